"""flowtrace_dask equals flowtrace_array, on threads and on a process cluster."""

import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowtrace_gpu import FlowtraceError, flowtrace_array, flowtrace_dask
from flowtrace_gpu.options import NORMALIZE_MODES  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie

from conftest import BACKENDS
from naive import naive_trace_ext
from strategies import movies

dask = pytest.importorskip("dask", reason="flowtrace_dask needs the [dask] extra")
da = pytest.importorskip("dask.array", reason="flowtrace_dask needs the [dask] extra")


def threaded(array):
    return array.compute(scheduler="threads", num_workers=3)


def assert_same(got, expected):
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@st.composite
def cases(draw):
    """test_properties' movies and options, plus what only arrays and dask add."""
    frames, f, skip, options = draw(movies())
    kept = len(range(0, len(frames), skip))
    options["grayscale"] = frames.ndim == 4 and draw(st.booleans())
    options["normalize"] = draw(st.sampled_from(NORMALIZE_MODES))
    options["saturate"] = draw(st.sampled_from([0.0, 0.0, 0.35, 20.0]))
    chunk = draw(st.integers(1, len(frames)))
    block = draw(st.one_of(st.none(), st.integers(max(1, f - 1), kept + 2)))
    backend = draw(st.sampled_from(BACKENDS))
    return frames, f, skip, options, chunk, block, backend


@given(case=cases())
def test_dask_equals_flowtrace_array(case):
    frames, f, skip, options, chunk, block, backend = case
    # The threaded pipeline: with normalize='global' and saturate its measuring pass
    # takes the images in order (saturation.LevelRecorder), as the blocks' shares add.
    frames_dask = da.from_array(frames, chunks=chunk)
    try:
        expected = flowtrace_array(frames, f, skip, backend=backend, **options)
    except FlowtraceError as exc:  # e.g. saturate with normalize='none': refused alike
        with pytest.raises(FlowtraceError, match=re.escape(str(exc)[:30])):
            flowtrace_dask(frames_dask, f, skip, block=block, backend=backend, **options)
    else:
        lazy = flowtrace_dask(frames_dask, f, skip, block=block, backend=backend, **options)
        assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
        assert_same(threaded(lazy), expected)


# (N, F, input chunk, block): chunks shorter than F-1, equal to it, ragged tails,
# N = F, one block, F = 1, block = F-1 exactly.
CHUNKINGS = [(40, 10, 3, None), (40, 10, 9, 9), (41, 10, 7, 12), (43, 6, 40, 11),
             (10, 10, 4, None), (10, 10, 10, 1000), (30, 5, 30, 100), (17, 1, 5, 4),
             (25, 2, 1, 1)]


@pytest.mark.parametrize("n,f,chunk,block", CHUNKINGS)
@pytest.mark.parametrize("windows", ["sliding", "original"])
def test_chunkings(n, f, chunk, block, windows):
    movie = synthetic_movie(n, (12, 16), n_particles=30, seed=n)
    expected = flowtrace_array(movie, f, windows=windows, progress=False)
    lazy = flowtrace_dask(da.from_array(movie, chunks=chunk), f, windows=windows, block=block)
    if block is not None:  # output blocks are `block` images, the last one the rest
        sizes = lazy.chunks[0]
        assert all(size == block for size in sizes[:-1]) and 0 < sizes[-1] <= block
    assert lazy.chunks[1:] == ((12,), (16,))
    assert_same(threaded(lazy), expected)


@pytest.mark.parametrize("options", [
    dict(subtract_median=True, normalize="global"),
    dict(color_series=True, fade_tails=True, colormap=["#102030", "#ffee00"]),
    dict(invert_color=True, normalize="none", bit_depth=12),
    dict(take_diff=True, diff_order=2, add_first_frame=True, subtract_first=True),
])
def test_rgb_and_uint16_options_against_the_oracle(options):
    rgb = np.stack([synthetic_movie(36, (10, 14), seed=s) for s in (5, 6, 7)], axis=-1)
    movie = (rgb.astype(np.uint16) * 13) % 4096
    lazy = flowtrace_dask(da.from_array(movie, chunks=(5, 10, 7, 3)), 8, block=9, **options)
    got = threaded(lazy)
    assert_same(got, flowtrace_array(movie, 8, progress=False, **options))
    if "colormap" not in options:
        np.testing.assert_array_equal(got, naive_trace_ext(movie, 8, **options))


@pytest.mark.parametrize("saturate", [0.35, 10.0])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_global_saturate_on_a_brightening_movie(saturate, dtype):
    # Brighter and brighter images regrow the run histogram's range many times:
    # the level depends on that history, which the blocks' shares replay.
    gain = np.linspace(0.1, 1.0, 80)[:, None, None]
    movie = (synthetic_movie(80, (20, 24), seed=11) * gain).astype(dtype)
    options = dict(normalize="global", saturate=saturate, subtract_median=dtype == np.uint8)
    expected = flowtrace_array(movie, 9, use_parallel=False, **options)
    lazy = flowtrace_dask(da.from_array(movie, chunks=13), 9, block=10, **options)
    assert_same(threaded(lazy), expected)


def test_level_shares_add_up_to_the_in_order_run_histogram():
    from flowtrace_gpu.engine.saturation import LevelRecorder, LevelShare, run_tops

    rng = np.random.default_rng(4)
    images = rng.random((40, 6, 7)) * np.geomspace(0.01, 100, 40)[:, None, None]
    images[[5, 30]] = images[[30, 5]]  # brightening, with one early bright image
    whole = LevelRecorder(1.0)
    for i, image in enumerate(images):
        whole.write(i, image)
    peaks = images.reshape(40, -1).max(axis=1)
    tops = run_tops(peaks)
    assert tops[-1] == whole.top and len(tops) > 5
    total = 0
    for start, stop in [(0, 3), (3, 4), (4, 25), (25, 40)]:
        share = LevelShare(tops, peaks[:start].max() if start else -np.inf)
        for i in range(start, stop):
            share.write(i, images[i])
        total = total + share.close()
    np.testing.assert_array_equal(total, whole.counts)


def test_global_scale_is_a_number_in_the_graph():
    # Peaks are computed first: the returned graph holds no peak task, only images.
    movie = synthetic_movie(50, (16, 16), seed=1)
    lazy = flowtrace_dask(da.from_array(movie, chunks=10), 10, normalize="global", block=12)
    names = {key[0] if isinstance(key, tuple) else key for key in dict(lazy.__dask_graph__())}
    assert not any("peak" in name for name in names), names
    assert_same(threaded(lazy), flowtrace_array(movie, 10, normalize="global", progress=False))


def test_default_block_covers_four_halos_in_whole_input_chunks():
    movie = da.zeros((500, 8, 8), dtype=np.uint8, chunks=(7, 8, 8))
    with dask.config.set({"array.chunk-size": "2KiB"}):  # 32 frames: the halos decide
        assert flowtrace_dask(movie, 21).chunks[0][0] == 84  # 4 x 20, in whole chunks of 7
    with dask.config.set({"array.chunk-size": "8KiB"}):  # 128 frames
        assert flowtrace_dask(movie, 21).chunks[0][0] == 133


def test_block_shorter_than_the_halo_is_refused():
    movie = da.zeros((40, 4, 4), dtype=np.uint8, chunks=10)
    with pytest.raises(FlowtraceError, match="block=8.*F-1 = 9"):
        flowtrace_dask(movie, 10, block=8)
    with pytest.raises(FlowtraceError, match="block"):
        flowtrace_dask(movie, 10, block=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(backend="cuda"), "backend"),
    (dict(frames_to_merge=41), "frames_to_merge=41"),
    (dict(normalize="loud"), "normalize"),
    (dict(colormap="viridis"), "color_series"),
])
def test_bad_input_fails_before_any_task(kwargs, match):
    movie = da.zeros((40, 4, 4), dtype=np.uint8, chunks=10)
    args = {"frames_to_merge": 5, **kwargs}
    with pytest.raises(FlowtraceError, match=match):
        flowtrace_dask(movie, **args)


def test_unknown_chunk_sizes_are_refused():
    movie = da.zeros((40, 4, 4), dtype=np.uint8, chunks=10)
    unknown = movie[movie[:, 0, 0] == 0]
    with pytest.raises(FlowtraceError, match="compute_chunk_sizes"):
        flowtrace_dask(unknown, 5)


def test_missing_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.array", None)  # import fails
    with pytest.raises(FlowtraceError, match=r"pip install 'flowtrace-gpu\[dask\]'"):
        flowtrace_dask(np.zeros((4, 2, 2), np.uint8), 2)


def test_memmap_travels_by_path(tmp_path):
    movie = synthetic_movie(60, (64, 64), seed=3)
    path = tmp_path / "movie.raw"
    movie.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r", shape=movie.shape)
    for view, same in ((mapped[5:], movie[5:]),  # a view: its own offset in the file
                       (mapped[3::2, 10:50, 7:], movie[3::2, 10:50, 7:])):  # and strides
        lazy = flowtrace_dask(view, 10, block=12)
        graph = pickle.dumps(dict(lazy.__dask_graph__()))
        assert len(graph) < view.nbytes / 10, "the frames went into the graph"
        assert_same(threaded(lazy), flowtrace_array(same, 10, progress=False))


def test_gray_input_with_color_series_gains_a_channel_axis():
    movie = synthetic_movie(30, (8, 9), seed=2)
    lazy = flowtrace_dask(da.from_array(movie, chunks=4), 6, color_series=True, block=7)
    assert lazy.shape == (25, 8, 9, 3) and lazy.chunks[3] == (3,)
    assert_same(threaded(lazy), flowtrace_array(movie, 6, color_series=True, progress=False))


def run_python(code: str, **env):
    import os

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba backend not available")
def test_threads_share_numba_under_the_workqueue_layer():
    # Unguarded, two threads launching parallel kernels abort the process
    # (exit -6, "Concurrent access has been detected").
    proc = run_python("""
        import numpy as np
        from flowtrace_gpu import flowtrace_array, flowtrace_dask
        movie = np.random.default_rng(0).integers(0, 255, (240, 32, 32), dtype=np.uint8)
        got = flowtrace_dask(movie, 5, block=6, backend='numba').compute(
            scheduler='threads', num_workers=4)
        np.testing.assert_array_equal(got, flowtrace_array(movie, 5, backend='numba'))
        import numba
        print(numba.threading_layer())
    """, NUMBA_THREADING_LAYER="workqueue")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "workqueue"


def test_importing_the_package_does_not_import_dask():
    proc = run_python("""
        import sys, flowtrace_gpu
        print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'zarr')))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------ a process cluster

@pytest.fixture(scope="module")
def client():
    import distributed

    from flowtrace_gpu.scaleout.batch import local_cluster

    with local_cluster(2) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.slow
def test_on_two_worker_processes(client, tmp_path):
    import distributed

    movie = synthetic_movie(160, (32, 40), seed=4)
    path = tmp_path / "movie.raw"
    movie.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r", shape=movie.shape)
    for options in (dict(subtract_median=True), dict(normalize="global", invert_color=True)):
        lazy = flowtrace_dask(mapped, 12, block=16, **options)
        with distributed.get_task_stream(client) as stream:
            got = lazy.compute()
        assert_same(got, flowtrace_array(movie, 12, progress=False, **options))
        workers = {t["worker"] for t in stream.data if "flowtrace" in str(t["key"])}
        assert len(workers) == 2, f"tasks ran on {workers}"


@pytest.mark.slow
def test_workers_run_with_the_malloc_settings(client):
    from flowtrace_gpu.scaleout.batch import worker_environ

    expected = {k: str(v) for k, v in worker_environ().items()}
    seen = client.run(lambda: {k: __import__("os").environ.get(k) for k in expected})
    assert all(env == expected for env in seen.values()), seen


def test_dask_config_scheduler_is_honoured():
    # flowtrace_dask adds no scheduler of its own: the synchronous one runs it too.
    movie = synthetic_movie(20, (8, 8), seed=9)
    with dask.config.set(scheduler="synchronous"):
        got = flowtrace_dask(movie, 4, block=5).compute()
    assert_same(got, flowtrace_array(movie, 4, progress=False))
