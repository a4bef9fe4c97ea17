"""flowtrace_batch and 'flowtrace batch': an archive on a two-worker process cluster."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, flowtrace, flowtrace_batch
from flowtrace_gpu.cli import _batch_parser, main
from flowtrace_gpu.options import registry
from flowtrace_gpu.scaleout import batch as batch_module
from flowtrace_gpu.scaleout.batch import DONE, FAILED, SKIPPED, BatchFailed
from flowtrace_gpu.synthetic import synthetic_movie

from conftest import assert_same_images
from faults import ENOSPC, fail_at

distributed = pytest.importorskip("distributed")

@pytest.fixture(scope="module")
def client():
    with batch_module.local_cluster(2) as cluster, distributed.Client(cluster) as c:
        yield c


def write_archive(folder, n=3, frames=30, shape=(24, 32)):
    """``n`` TIFF stacks and one folder of frames; returns {name: movie}."""
    folder.mkdir(parents=True, exist_ok=True)
    movies = {}
    for i in range(n):
        movie = synthetic_movie(frames, shape, seed=i)
        tifffile.imwrite(folder / f"rec{i}.tif", movie)
        movies[f"rec{i}"] = movie
    frames_dir = folder / "plate"
    frames_dir.mkdir(exist_ok=True)
    movie = synthetic_movie(frames, shape, seed=99)
    for j, frame in enumerate(movie):
        tifffile.imwrite(frames_dir / f"img{j:03d}.tif", frame)
    movies["plate"] = movie
    return movies


def images_of(folder):
    """{file name: bytes} of the images in an output folder (temporary files left out)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.suffix in (".png", ".tif") and not p.name.startswith(".")}


@pytest.fixture
def no_cluster(monkeypatch):
    """Fail if a batch starts a cluster: errors must come before anything starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(batch_module, "local_cluster", refuse)


def test_each_recording_gets_what_flowtrace_writes(client, tmp_path):
    write_archive(tmp_path / "archive")
    sources = [str(tmp_path / "archive" / "*.tif"), tmp_path / "archive" / "plate"]
    results = flowtrace_batch(sources, 8, tmp_path / "out", client=client, progress=False,
                              subtract_median=True, windows="original")
    assert [r.source.name for r in results] == ["rec0.tif", "rec1.tif", "rec2.tif", "plate"]
    assert all(r.status == DONE for r in results)
    for r in results:
        assert r.out == tmp_path / "out" / r.source.name.removesuffix(".tif")
        reference = tmp_path / "reference" / r.out.name
        expected = flowtrace(r.source, 8, reference, subtract_median=True, windows="original",
                             progress=False)
        assert [p.name for p in r.outputs] == [p.name for p in expected]
        assert_same_images(images_of(r.out), images_of(reference), tmp_path / "differing")


def test_a_failed_recording_is_named_and_the_others_complete(client, tmp_path):
    write_archive(tmp_path / "archive", n=2)
    (tmp_path / "archive" / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(BatchFailed, match=r"1 of 4 recordings failed(.|\n)*broken\.tif") as info:
        flowtrace_batch(str(tmp_path / "archive" / "*"), 5, tmp_path / "out", client=client,
                        progress=False)
    statuses = {r.source.name: r.status for r in info.value.results}
    assert statuses == {"broken.tif": FAILED, "rec0.tif": DONE, "rec1.tif": DONE, "plate": DONE}
    for name in ("rec0", "rec1", "plate"):
        assert len(images_of(tmp_path / "out" / name)) == 26


def test_cli_batch_on_a_scheduler_exits_non_zero_naming_the_failure(client, tmp_path, capsys):
    write_archive(tmp_path / "archive", n=2)
    (tmp_path / "archive" / "broken.tif").write_bytes(b"nope")
    argv = ["batch", str(tmp_path / "archive" / "rec*.tif"), str(tmp_path / "archive" / "broken.tif"),
            "6", str(tmp_path / "out"), "--scheduler", client.scheduler.address, "--invert-color"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "3 recordings: 2 traced, 0 already complete, 1 failed" in err and "broken.tif" in err
    reference = tmp_path / "reference"
    flowtrace(tmp_path / "archive" / "rec1.tif", 6, reference, invert_color=True, progress=False)
    assert_same_images(images_of(tmp_path / "out" / "rec1"), images_of(reference),
                       tmp_path / "differing")


@pytest.mark.slow
def test_cli_batch_starts_and_closes_a_local_cluster(tmp_path, monkeypatch, capsys):
    write_archive(tmp_path / "archive", n=1)
    started = []

    def recording(n_workers, **kwargs):
        cluster = local_cluster(n_workers, **kwargs)
        started.append(cluster)
        return cluster

    local_cluster = batch_module.local_cluster
    monkeypatch.setattr(batch_module, "local_cluster", recording)
    assert main(["batch", str(tmp_path / "archive" / "rec0.tif"), "5", str(tmp_path / "out"),
                 "--workers", "1"]) == 0
    assert "1 recordings: 1 traced" in capsys.readouterr().err
    assert len(started) == 1 and len(started[0].workers) == 0 and started[0].status.name == "closed"
    assert len(images_of(tmp_path / "out" / "rec0")) == 26


def test_batch_parser_takes_every_option():
    flags = {flag for action in _batch_parser()._actions for flag in action.option_strings}
    for opt in registry():
        assert opt.cli in flags, opt.name
    args = _batch_parser().parse_args(["a.tif", "b*.tif", "30", "out", "--workers", "3",
                                       "--subtract-median", "--no-resume"])
    assert args.sources == ["a.tif", "b*.tif"] and args.frames == 30 and args.out_root == "out"
    assert args.workers == 3 and args.subtract_median and args.batch_resume is False


@pytest.mark.parametrize("make,kwargs,match", [
    (lambda d: [d / "missing.tif"], {}, "missing.tif' does not exist"),
    (lambda d: [str(d / "*.mp4")], {}, r"\*\.mp4' matches nothing"),
    (lambda d: [d / "a" / "rec.tif", d / "b" / "rec.tif"], {}, "would both be written"),
    (lambda d: [d / "a" / "rec.tif"], {"subtract_mean": True}, "unknown option.*subtract_mean"),
    (lambda d: [d / "a" / "rec.tif"], {"normalize": "loud"}, "normalize"),
    (lambda d: [d / "a" / "rec.tif"], {"format": "video"}, "format='video'"),
    (lambda d: [], {}, "no sources"),
])
def test_bad_input_fails_before_anything_starts(tmp_path, no_cluster, make, kwargs, match):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        tifffile.imwrite(tmp_path / sub / "rec.tif", np.zeros((6, 4, 4), np.uint8))
    with pytest.raises(FlowtraceError, match=match):
        flowtrace_batch(make(tmp_path), 3, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_second_batch_rewrites_nothing_and_finishes_what_was_half_done(client, tmp_path,
                                                                          monkeypatch):
    from flowtrace_gpu.io.writers import PngFolderWriter
    from flowtrace_gpu.runs.manifest import read_manifest

    write_archive(tmp_path / "archive", n=3)
    sources = str(tmp_path / "archive" / "*.tif")
    first = flowtrace_batch(sources, 5, tmp_path / "out", client=client, progress=False)
    assert all(r.status == DONE for r in first)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")}
    second = flowtrace_batch(sources, 5, tmp_path / "out", client=client, progress=False)
    assert all(r.status == SKIPPED for r in second)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")} == stamps

    # rec1 is left half-done (a full disk at image 9) and its folder's record kept.
    half = tmp_path / "out" / "rec1"
    monkeypatch.setattr(PngFolderWriter, "write", fail_at(PngFolderWriter.write, 9, ENOSPC))
    with pytest.raises(FlowtraceError):
        flowtrace(tmp_path / "archive" / "rec1.tif", 5, half, progress=False, use_parallel=False)
    monkeypatch.undo()
    kept = {half / name: (half / name).stat().st_mtime_ns
            for name in _complete_names(read_manifest(half), half)}
    assert 0 < len(kept) < 26
    third = flowtrace_batch(sources, 5, tmp_path / "out", client=client, progress=False)
    assert [r.status for r in third] == [SKIPPED, DONE, SKIPPED]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # resumed, not rewritten
    assert read_manifest(half).is_complete
    reference = tmp_path / "reference"
    flowtrace(tmp_path / "archive" / "rec1.tif", 5, reference, progress=False)
    assert_same_images(images_of(half), images_of(reference), tmp_path / "differing")


def _complete_names(manifest, folder):
    names = sorted(p.name for p in folder.glob("*.png"))
    everything = [f"rec1_{i:02d}_streamlines_frames5.png" for i in range(manifest.n_images)]
    return [everything[i] for i in manifest.complete_indices() if everything[i] in names]


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing(client, tmp_path):
    # Last in the module: the killed worker's nanny starts a fresh one.
    names = [f"long{i}" for i in range(3)]
    (tmp_path / "archive").mkdir()
    for i, name in enumerate(names):
        tifffile.imwrite(tmp_path / "archive" / f"{name}.tif", synthetic_movie(900, (64, 64), seed=i))
    outcome = {}

    def run():
        try:
            outcome["results"] = flowtrace_batch(str(tmp_path / "archive" / "*.tif"), 5,
                                                 tmp_path / "out", client=client,
                                                 progress=False, max_cores=1)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    victim = wait_for_a_worker_mid_recording(client, tmp_path / "out", 896)
    pids = client.run(os.getpid)
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    assert all(r.status == DONE for r in outcome["results"]), outcome["results"]
    deadline = time.monotonic() + 30  # the scheduler may hear of an idle worker's death late
    while victim in client.scheduler_info()["workers"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victim not in client.scheduler_info()["workers"], "the worker was not killed"
    for name in names:
        reference = tmp_path / "reference" / name
        flowtrace(tmp_path / "archive" / f"{name}.tif", 5, reference, progress=False)
        assert_same_images(images_of(tmp_path / "out" / name), images_of(reference),
                           tmp_path / "differing" / name)
        assert not list((tmp_path / "out" / name).glob(".*part*")), "temporary files left"


def wait_for_a_worker_mid_recording(client, out_root, n_images, timeout=120):
    """The address of a worker whose recording has some but not all of its images written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for address, keys in client.processing().items():
            for key in keys:
                name = str(key).split("-")[1]
                written = len(list((out_root / name).glob("*.png"))) if (out_root / name).is_dir() else 0
                if 20 < written < n_images - 100:
                    return address
        time.sleep(0.01)
    raise AssertionError("no recording was caught half-written")
