"""The napari plugin ``flowtrace-gpu``: its manifest, its lazy reader, and the Pathlines widget.

The widget's tests run a real ``napari.Viewer`` under Qt. They need a display:
pytest-xvfb starts Xvfb where it is installed (``.ci/gui_deps.sh`` installs it
and Mesa). Without napari or a display they skip, except under CI (``CI``
set), where they fail: CI runs every GUI test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import flowtrace, flowtrace_array, time_legend
from flowtrace_gpu.io import suffixes
from flowtrace_gpu.io.formats import open_source
from flowtrace_gpu.options import image_option_names
from flowtrace_gpu.runs.manifest import lock_path, read_manifest
from flowtrace_gpu.synthetic import synthetic_movie

from camera_writers import write_cine
from conftest import REAL, ROOT

MANIFEST = ROOT / "flowtrace_gpu" / "napari" / "napari.yaml"
#: Numba compiles the preview's kernels on first use: seconds on a busy machine.
SETTLE_MS = 180_000


def _need(available: bool, reason: str) -> None:
    """Skip without ``reason``'s means, but fail under CI, which must run every GUI test."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI runs the GUI tests: install the [test] extra and run "
                    ".ci/gui_deps.sh (Xvfb, Mesa)")
    pytest.skip(reason)


def _napari():
    try:
        import napari
    except ImportError as exc:  # the [napari] extra is missing
        _need(False, f"napari is not importable ({exc})")
    return napari


@pytest.fixture(scope="session")
def gui():
    """napari, with a display to open windows on.

    Session-scoped, so that it is checked before pytest-qt's session-wide
    QApplication starts (without a display, Qt aborts the process).
    """
    napari = _napari()
    _need(bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
          "no display (install Xvfb: pytest-xvfb then starts one)")
    return napari


@pytest.fixture
def viewer(gui, qtbot):
    v = gui.Viewer(show=False)
    yield v
    v.close()


def _reader(path):
    from flowtrace_gpu.napari._reader import get_reader

    read = get_reader(str(path))
    assert read is not None, f"the plugin does not claim {path}"
    (data, kwargs, kind), = read(str(path))
    assert kind == "image"
    return data, kwargs


# ------------------------------------------------------------------ manifest

def test_manifest_claims_every_recording_suffix():
    import yaml

    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["name"] == "flowtrace-gpu"  # must equal the distribution's name
    reader, = manifest["contributions"]["readers"]
    wanted = {f"*{s}" for r in suffixes.RECORDINGS for s in r.suffixes}
    assert set(reader["filename_patterns"]) == wanted
    assert reader["accepts_directories"] is True  # folders of frames, zarr arrays
    widget, = manifest["contributions"]["widgets"]
    assert widget["display_name"] == "Pathlines"


def test_npe2_validates_the_installed_plugin():
    _napari()
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", "flowtrace-gpu"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


# ------------------------------------------------------------------ reader

def _write_ffv1(path, movie, fps=25):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.height, stream.width = movie.shape[1:3]
        stream.pix_fmt = "gray"
        for frame in movie:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _sources(tmp_path):
    """(path, expected frames, fps, bit depth, Bayer pattern) of every kind the reader takes."""
    movie = synthetic_movie(12, (24, 32), seed=5)
    deep = (movie.astype(np.uint16) * 16)  # 12 significant bits
    cases = []
    tifffile.imwrite(tmp_path / "stack.tif", movie)
    cases.append((tmp_path / "stack.tif", movie, None, None, None))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(folder / f"f{i}.tif", frame)
    cases.append((folder, movie, None, None, None))
    write_cine(tmp_path / "shot.cine", deep, fps=5000, real_bpp=12)
    cases.append((tmp_path / "shot.cine", deep, 5000.0, 12, None))
    _write_ffv1(tmp_path / "clip.mkv", movie)
    cases.append((tmp_path / "clip.mkv", movie, 25.0, None, None))
    if REAL.is_dir():
        cases.append((REAL / "cine_781.cine", np.load(REAL / "cine_781.pims.npy"), 90000.0, 12,
                      None))
        for name in ("ball_12bit.cihx", "sample_60k_16bit.cih"):
            path = REAL / "photron" / name
            source = open_source(path)
            cases.append((path, np.stack(list(source.frames(range(source.n_frames)))),
                          source.fps, source.bit_depth, None))
    try:
        import zarr
    except ImportError:
        pass
    else:
        store = zarr.create_array(str(tmp_path / "movie.zarr"), shape=movie.shape,
                                  chunks=(4,) + movie.shape[1:], dtype=movie.dtype)
        store[:] = movie
        cases.append((tmp_path / "movie.zarr", movie, None, None, None))
    return cases


def test_reader_gives_every_source_lazily_with_its_metadata(tmp_path):
    from flowtrace_gpu.napari._reader import SOURCE_KEY

    for path, expected, fps, bits, pattern in _sources(tmp_path):
        data, kwargs = _reader(path)
        assert hasattr(data, "dask"), path  # lazy: a dask array
        assert data.shape == expected.shape and data.dtype == expected.dtype, path
        meta = kwargs["metadata"]
        assert (meta["fps"], meta["bit_depth"], meta["bayer_pattern"]) == (fps, bits, pattern), path
        assert meta[SOURCE_KEY] == str(Path(path).resolve())
        top = 2 ** (bits or 8 * expected.dtype.itemsize) - 1
        assert kwargs["contrast_limits"] == (0.0, float(top)), path
        # Out of order, backwards and repeated, as scrubbing asks for them.
        order = [3, 0, len(expected) - 1, 4, 5, 5, 1]
        for i in order:
            np.testing.assert_array_equal(data[i].compute(), expected[i], err_msg=f"{path} [{i}]")
        np.testing.assert_array_equal(np.asarray(data), expected, err_msg=str(path))


def test_reader_reads_only_the_frames_asked_for(tmp_path):
    from flowtrace_gpu.napari._reader import FrameCache, lazy_frames

    movie = synthetic_movie(40, (16, 16), seed=1)
    tifffile.imwrite(tmp_path / "s.tif", movie)
    frames = FrameCache(open_source(tmp_path / "s.tif"), budget=8 * movie[0].nbytes)
    data = lazy_frames(frames)
    assert frames.reads == 0  # opening reads no pixel
    np.testing.assert_array_equal(data[20:25].compute(), movie[20:25])
    assert frames.reads == 5
    np.testing.assert_array_equal(data[21:26].compute(), movie[21:26])  # slid by one
    assert frames.reads == 6
    np.testing.assert_array_equal(data[0].compute(), movie[0])
    assert frames.reads == 7 and len(frames._kept) <= 8


def test_preview_window_reads_one_new_frame_per_step(tmp_path):
    from flowtrace_gpu.napari._reader import frame_window, read_recording

    movie = synthetic_movie(40, (16, 16), seed=1)
    tifffile.imwrite(tmp_path / "s.tif", movie)
    (data, _, _), = read_recording(str(tmp_path / "s.tif"))
    assert frame_window(movie, 0, 4) is None  # not a layer of this reader
    frames = frame_window(data, 0, 1)._frames
    frames.capacity = 2  # a budget shorter than the window
    reads = 0
    for start in range(10, 14):
        window = frame_window(data, start, start + 12)
        np.testing.assert_array_equal(flowtrace_array(window, 12)[0],
                                      flowtrace_array(movie[start:start + 12], 12)[0])
        assert frames.reads - reads == (12 if start == 10 else 1)
        reads = frames.reads


def test_bayer_cine_metadata_names_its_pattern():
    if not REAL.is_dir():
        pytest.skip(f"real camera files not found at {REAL}")
    data, kwargs = _reader(REAL / "chart1.cine")
    assert kwargs["rgb"] and data.shape == (1, 1080, 2048, 3)
    assert kwargs["metadata"]["bayer_pattern"] == "GBRG"
    assert kwargs["contrast_limits"] == (0.0, 4095.0)


def test_reader_declines_what_flowtrace_does_not_read(tmp_path):
    from flowtrace_gpu.napari._reader import get_reader

    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "empty")) is None
    assert get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) is None


_OPEN_1GB = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import numpy as np
    import npe2
    from napari.components import ViewerModel

    npe2.PluginManager.instance().discover()  # as napari.Viewer does at start

    def status(key):
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    viewer = ViewerModel()
    viewer.add_image(np.zeros((2, 2)))  # napari's own first-layer imports (pint...) out of the count
    Path('/proc/self/clear_refs').write_text('5')  # peak RSS from here on
    before = status('VmRSS:')
    start = time.perf_counter()
    layer, = viewer.open(sys.argv[1], plugin='flowtrace-gpu')
    shown = np.asarray(layer.data[viewer.dims.current_step[0]])  # the frame on screen
    seconds = time.perf_counter() - start
    print(json.dumps({'seconds': seconds, 'added': status('VmHWM:') - before,
                      'shape': list(layer.data.shape), 'first': int(shown[0, 0]),
                      'last': int(np.asarray(layer.data[-1])[0, 0])}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_opening_a_1gb_stack_is_quick_and_small(tmp_path):
    _napari()
    n, side = 1024, 1024  # 1 GiB of uint8
    if shutil.disk_usage(tmp_path).free < 3 * n * side * side:
        pytest.skip(f"{tmp_path} has no room for a 1 GiB stack")
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, shape=(n, side, side), dtype=np.uint8)  # header, empty pixels
    with tifffile.TiffFile(path) as tif:
        offset = tif.series[0].dataoffset
    with open(path, "r+b") as fh:  # the pixels, 64 frames at a time: never 1 GiB in memory
        fh.seek(offset)
        for first in range(0, n, 64):
            block = (np.arange(first, first + 64, dtype=np.uint16) % 251).astype(np.uint8)
            fh.write(np.broadcast_to(block[:, None, None], (64, side, side)).tobytes())
    assert path.stat().st_size >= 2**30
    result = subprocess.run([sys.executable, "-c", _OPEN_1GB, str(path)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["shape"] == [n, side, side]
    assert got["last"] == (n - 1) % 251
    assert got["seconds"] < 3.0, got
    assert got["added"] < 300 * 2**20, got


# ------------------------------------------------------------------ widget

def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("flowtrace-gpu", "Pathlines")
    return widget


def _settle(qtbot, widget):
    qtbot.waitUntil(lambda: widget.settled, timeout=SETTLE_MS)


def test_pathlines_follow_the_slider_and_the_options(viewer, qtbot):
    if not REAL.is_dir():
        pytest.skip(f"real camera files not found at {REAL} (they live in ../shared)")
    path = REAL / "cine_781.cine"
    frames = np.load(REAL / "cine_781.pims.npy")
    layer, = viewer.open(str(path), plugin="flowtrace-gpu")
    np.testing.assert_array_equal(np.asarray(layer.data), frames)
    assert layer.metadata["fps"] == 90000.0 and layer.metadata["bit_depth"] == 12

    widget = _dock(viewer)
    assert widget.source_layer.value is layer
    widget.frames_to_merge.value = 5
    viewer.dims.set_current_step(0, 8)
    _settle(qtbot, widget)
    shown = viewer.layers["pathlines"].data
    np.testing.assert_array_equal(shown, flowtrace_array(frames[4:9], 5)[0])

    steps = [  # (change, window, options): each must change the image
        (lambda: setattr(widget.subtract_median, "value", True), (4, 9),
         dict(subtract_median=True)),
        (lambda: viewer.dims.set_current_step(0, 12), (8, 13), dict(subtract_median=True)),
        (lambda: setattr(widget.color_series, "value", True), (8, 13),
         dict(subtract_median=True, color_series=True)),
        (lambda: viewer.dims.set_current_step(0, 2), (0, 5),  # near the start: the first F
         dict(subtract_median=True, color_series=True)),
    ]
    for change, (start, stop), options in steps:
        before = viewer.layers["pathlines"].data.copy()
        change()
        _settle(qtbot, widget)
        expected = flowtrace_array(frames[start:stop], 5, **options)[0]
        assert before.shape != expected.shape or not np.array_equal(before, expected)
        np.testing.assert_array_equal(viewer.layers["pathlines"].data, expected,
                                      err_msg=f"window {start}..{stop - 1}, {options}")
    assert viewer.layers["pathlines"].rgb
    # color_series: the window's time legend below the preview, ticks from the file's fps
    np.testing.assert_array_equal(viewer.layers["legend"].data, time_legend(5, fps=90000.0))


def test_widgets_are_the_registry_options(viewer):
    widget = _dock(viewer)
    names = [w.name for w in widget]
    wanted = ["source_layer", "frames_to_merge", *image_option_names(), "backend"]
    assert names[:len(wanted)] == wanted
    assert widget.backend.value == "auto"


def test_stale_previews_are_dropped(viewer, qtbot):
    movie = synthetic_movie(40, (64, 64), seed=2)
    viewer.add_image(movie, name="movie")
    widget = _dock(viewer)
    widget.frames_to_merge.value = 6
    _settle(qtbot, widget)
    shown = []
    viewer.layers["pathlines"].events.data.connect(lambda event: shown.append(1))
    for t in range(10, 30):  # faster than the previews are computed
        viewer.dims.set_current_step(0, t)
    _settle(qtbot, widget)
    np.testing.assert_array_equal(viewer.layers["pathlines"].data,
                                  flowtrace_array(movie[24:30], 6)[0])
    assert 1 <= len(shown) < 20  # overtaken requests never reached the screen


def test_a_bad_option_is_reported_and_the_image_kept(viewer, qtbot):
    movie = synthetic_movie(20, (32, 32), seed=3)
    viewer.add_image(movie, name="movie")
    widget = _dock(viewer)
    widget.frames_to_merge.value = 4
    viewer.dims.set_current_step(0, 2)
    _settle(qtbot, widget)
    kept = viewer.layers["pathlines"].data.copy()
    widget.colormap.value = "viridis"  # without color_series: refused by TraceOptions
    _settle(qtbot, widget)
    assert "color_series" in widget.status.value
    np.testing.assert_array_equal(viewer.layers["pathlines"].data, kept)
    widget.color_series.value = True
    _settle(qtbot, widget)
    np.testing.assert_array_equal(
        viewer.layers["pathlines"].data,
        flowtrace_array(movie[:4], 4, color_series=True, colormap="viridis")[0])


def test_legend_follows_color_series_and_fade_tails(viewer, qtbot):
    movie = synthetic_movie(12, (32, 32), seed=4)
    viewer.add_image(movie, name="movie")
    widget = _dock(viewer)
    widget.frames_to_merge.value = 4
    _settle(qtbot, widget)
    assert "legend" not in viewer.layers
    widget.color_series.value = True
    widget.colormap.value = "viridis"
    _settle(qtbot, widget)
    legend = viewer.layers["legend"]
    np.testing.assert_array_equal(legend.data, time_legend(4, colormap="viridis"))
    assert legend.translate[0] > 32  # below the preview...
    assert legend.data.shape[1] * legend.scale[1] == 32  # ... as wide
    widget.colormap.value = ""
    widget.color_series.value = False
    widget.fade_tails.value = True
    _settle(qtbot, widget)
    np.testing.assert_array_equal(viewer.layers["legend"].data,
                                  time_legend(4, fade_tails=True, color_series=False))
    widget.fade_tails.value = False
    _settle(qtbot, widget)
    assert "legend" not in viewer.layers


def test_legend_hook_adds_updates_and_removes_the_layer(viewer, qtbot):
    movie = synthetic_movie(12, (32, 32), seed=4)
    viewer.add_image(movie, name="movie")
    widget = _dock(viewer)
    widget.frames_to_merge.value = 4
    _settle(qtbot, widget)
    strip = np.zeros((8, 40, 3), np.uint8)
    strip[:, :, 0] = np.arange(40, dtype=np.uint8)[None, :] * 6
    widget._show_legend(strip)
    np.testing.assert_array_equal(viewer.layers["legend"].data, strip)
    assert viewer.layers["legend"].translate[0] > 32  # below the preview
    widget._show_legend(strip[::-1])
    np.testing.assert_array_equal(viewer.layers["legend"].data, strip[::-1])
    widget._show_legend(None)
    assert "legend" not in viewer.layers


# ------------------------------------------------------------------ trace all

def _trace_all(widget, qtbot, output=None, **run):
    dialog = widget.open_trace_all()
    if output is not None:
        dialog.output.value = output
    for name, value in run.items():
        dialog[name].value = value
    dialog.start()
    return dialog


def test_trace_all_writes_what_flowtrace_writes(viewer, qtbot, tmp_path):
    movie = synthetic_movie(30, (48, 64), seed=6)
    tifffile.imwrite(tmp_path / "rec.tif", movie)
    viewer.open(str(tmp_path / "rec.tif"), plugin="flowtrace-gpu")
    widget = _dock(viewer)
    widget.frames_to_merge.value = 8
    widget.subtract_median.value = True
    dialog = _trace_all(widget, qtbot, tmp_path / "out")
    qtbot.waitUntil(lambda: not dialog.running, timeout=SETTLE_MS)
    assert dialog.outcome == "done", dialog.status.value
    flowtrace(tmp_path / "rec.tif", 8, tmp_path / "expected", subtract_median=True, progress=False)
    got = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert got == sorted(p.name for p in (tmp_path / "expected").glob("*.png")) and len(got) == 23
    for name in got:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "expected" / name).read_bytes()


def test_trace_all_cancel_leaves_a_resumable_output(viewer, qtbot, tmp_path):
    movie = synthetic_movie(1500, (96, 96), seed=7)
    tifffile.imwrite(tmp_path / "long.tif", movie)
    viewer.open(str(tmp_path / "long.tif"), plugin="flowtrace-gpu")
    widget = _dock(viewer)
    widget.frames_to_merge.value = 40
    widget.subtract_median.value = True
    dialog = _trace_all(widget, qtbot, tmp_path / "out", max_cores=1)
    qtbot.waitUntil(lambda: dialog._state.n > 0 or not dialog.running, timeout=SETTLE_MS)
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.running, timeout=SETTLE_MS)
    assert dialog.outcome == "interrupted", dialog.status.value
    assert "--resume" in dialog.status.value
    record = read_manifest(tmp_path / "out")
    assert 0 < record.n_complete < record.n_images == 1461
    assert not lock_path(tmp_path / "out").exists()  # released
    # resume=True finishes it: the same images as one uninterrupted run
    flowtrace(tmp_path / "long.tif", 40, tmp_path / "out", subtract_median=True, resume=True,
              progress=False)
    flowtrace(tmp_path / "long.tif", 40, tmp_path / "whole", subtract_median=True, progress=False)
    names = sorted(p.name for p in (tmp_path / "whole").glob("*.png"))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == names
    for name in names[:: max(1, len(names) // 50)]:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_trace_all_of_an_in_memory_layer_adds_a_layer(viewer, qtbot):
    movie = synthetic_movie(24, (32, 48), seed=8)
    viewer.add_image(movie, name="movie")
    widget = _dock(viewer)
    widget.frames_to_merge.value = 6
    widget.fade_tails.value = True
    dialog = _trace_all(widget, qtbot)
    assert not dialog.output.enabled  # nothing written: the images become a layer
    qtbot.waitUntil(lambda: not dialog.running, timeout=SETTLE_MS)
    assert dialog.outcome == "done", dialog.status.value
    np.testing.assert_array_equal(viewer.layers["movie pathlines (all)"].data,
                                  flowtrace_array(movie, 6, fade_tails=True))


def test_napari_progress_cancel_stops_an_in_memory_run(viewer, qtbot):
    movie = synthetic_movie(800, (96, 96), seed=9)
    viewer.add_image(movie, name="movie")
    widget = _dock(viewer)
    widget.frames_to_merge.value = 40
    widget.subtract_median.value = True
    dialog = _trace_all(widget, qtbot, max_cores=1)
    qtbot.waitUntil(lambda: dialog._state.n > 0 or not dialog.running, timeout=SETTLE_MS)
    dialog._bar.cancel()  # the Cancel of napari's activity panel
    qtbot.waitUntil(lambda: not dialog.running, timeout=SETTLE_MS)
    assert dialog.outcome == "cancelled", dialog.status.value
    assert "movie pathlines (all)" not in viewer.layers
