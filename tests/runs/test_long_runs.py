"""Long runs that survive faults: resume, debris, signals, the lock, inputs, full disks.

Kill and signal tests run the command line in a subprocess on a TIFF folder
long enough to be caught mid-run; everything else runs in-process, with
failures injected where the operating system would raise them.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, IncompleteRunError, flowtrace, flowtrace_array
from flowtrace_gpu.cli import main
from flowtrace_gpu.io import own_files, writers
from flowtrace_gpu.io.sources import ImageFolderSource
from flowtrace_gpu.io.tiff_stack import TiffStackWriter
from flowtrace_gpu.runs.lock import OutputLock, this_host
from flowtrace_gpu.runs.manifest import Manifest, read_manifest, to_ranges
from flowtrace_gpu.runs.output_run import OutputRun
from flowtrace_gpu.synthetic import synthetic_movie

from conftest import ROOT, assert_same_images, read_png
from faults import ENOSPC, fail_at

# ------------------------------------------------------------------ helpers

def make_folder(path: Path, n: int, shape=(24, 32), seed: int = 0) -> np.ndarray:
    path.mkdir(parents=True, exist_ok=True)
    movie = synthetic_movie(n, shape, n_particles=30, seed=seed)
    for i, frame in enumerate(movie):
        tifffile.imwrite(path / f"f{i:04d}.tif", frame)
    return movie


def file_bytes(paths) -> dict:
    return {Path(p).name: Path(p).read_bytes() for p in paths}


def same_images(got: dict, expected: dict, movie_dir: Path, f: int = 10) -> None:
    """The outputs ``got`` (name -> PNG bytes) are ``expected``'s, byte for byte.

    :func:`conftest.assert_same_images`, and each differing file of either side
    is first compared with the window recomputed from the movie's frames, so a
    failure tells which side's pixels are wrong.
    """
    names = sorted(expected)
    for name in (k for k in names if k in got and got[k] != expected[k]):
        i = names.index(name)
        frames = np.stack([tifffile.imread(movie_dir / f"f{j:04d}.tif") for j in range(i, i + f)])
        truth = flowtrace_array(frames, f, backend="numpy")[0]
        for side, files in (("got", got), ("expected", expected)):
            image = read_png(io.BytesIO(files[name]))
            assert image.dtype == truth.dtype and np.array_equal(image, truth), (
                f"{name} ({side}): {int(np.count_nonzero(image != truth))} pixels off the "
                "recomputed window")
    assert_same_images(got, expected, movie_dir.parent / "differing")


def stamps(folder: Path, names) -> dict:
    return {n: (os.stat(folder / n).st_ino, os.stat(folder / n).st_mtime_ns) for n in names}


def debris(folder: Path) -> list[str]:
    """Temporary files and locks left in ``folder``."""
    return [p.name for p in folder.iterdir()
            if own_files.is_temporary(p.name) or p.name.endswith(".lock")]


def assert_manifest_true(out: Path, names) -> Manifest:
    """Every image the manifest lists complete is a whole, readable file."""
    manifest = read_manifest(out)
    assert manifest is not None
    for i in manifest.complete_indices():
        assert read_png(out / names[i]).size > 0
    return manifest


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def stop_at_image(k: int, d: Path, out: Path, monkeypatch) -> None:
    """A serial run into ``out`` that finds the disk full at image ``k``."""
    monkeypatch.setattr(writers.PngFolderWriter, "write",
                        fail_at(writers.PngFolderWriter.write, k, ENOSPC))
    with pytest.raises(IncompleteRunError):
        flowtrace(d, 5, out, backend="numpy", progress=False, use_parallel=False)
    monkeypatch.undo()


@pytest.fixture
def movie_dir(tmp_path):
    d = tmp_path / "movie"
    return d, make_folder(d, 60)


# ------------------------------------------------------------------ resume

RESUME_CASES = [
    ("numpy", {}),
    ("numba", {"subtract_median": True}),
    ("numpy", {"color_series": True, "normalize": "global"}),
    ("numba", {"windows": "original", "frames_to_skip": 2, "invert_color": True}),
    ("numpy", {"format": "tiff", "take_diff": True, "fade_tails": True}),
]


@pytest.mark.parametrize("backend,options", RESUME_CASES)
def test_resume_after_a_full_disk_equals_an_uninterrupted_run(movie_dir, tmp_path, monkeypatch,
                                                              backend, options):
    d, _ = movie_dir
    reference = flowtrace(d, 5, tmp_path / "ref", backend=backend, progress=False, **options)
    names = [p.name for p in reference]
    out = tmp_path / "out"
    cls = writers.PngFolderWriter
    if options.get("format") == "tiff":
        from flowtrace_gpu.io.tiff_stack import TiffFolderWriter as cls
    monkeypatch.setattr(cls, "write", fail_at(cls.write, 17, ENOSPC))
    with pytest.raises(IncompleteRunError) as info:
        flowtrace(d, 5, out, backend=backend, progress=False, **options)
    message = str(info.value)
    assert re.search(r"no space left on device writing .*" + re.escape(names[17]), message)
    assert f"of {len(names)} images are complete in {out}" in message and "--resume" in message
    monkeypatch.undo()
    manifest = read_manifest(out)
    assert not manifest.is_complete and 17 not in set(manifest.complete_indices())
    assert info.value.completed == manifest.n_complete and info.value.total == len(names)
    kept = [names[i] for i in manifest.complete_indices()]
    assert all((out / n).is_file() for n in kept)
    before = stamps(out, kept)
    assert debris(out) == []

    result = flowtrace(d, 5, out, backend=backend, progress=False, resume=True, **options)
    assert [p.name for p in result] == names
    assert file_bytes(result) == file_bytes(reference)  # bit for bit
    assert stamps(out, kept) == before  # finished images untouched
    assert read_manifest(out).is_complete and debris(out) == []


def test_resume_reads_only_the_frames_of_missing_windows(movie_dir, tmp_path, monkeypatch):
    d, _ = movie_dir
    out = tmp_path / "out"
    reference = flowtrace(d, 5, out, backend="numpy", progress=False)
    expected = file_bytes(reference)
    names = [p.name for p in reference]
    for i in (3, 4, 30):  # a gap of two images and one far away
        (out / names[i]).unlink()
    before = stamps(out, [n for n in names if (out / n).exists()])
    reads = []
    original = ImageFolderSource._read
    monkeypatch.setattr(ImageFolderSource, "_read",
                        lambda self, i, region=None: reads.append(i) or original(self, i, region))
    flowtrace(d, 5, out, backend="numpy", progress=False, resume=True)
    assert sorted(reads) == [3, 4, 5, 6, 7, 8, 30, 31, 32, 33, 34]
    assert file_bytes(reference) == expected
    assert stamps(out, list(before)) == before


def test_stretches_join_gaps_shorter_than_a_window():
    run = OutputRun.__new__(OutputRun)
    run.todo = [3, 4, 8, 13, 30, 31]
    assert run.segments(5) == [(3, 13), (30, 31)]
    assert run.segments(4) == [(3, 8), (13, 13), (30, 31)]


def test_resume_refuses_other_options_or_a_changed_source(movie_dir, tmp_path, monkeypatch):
    d, _ = movie_dir
    out = tmp_path / "out"
    stop_at_image(10, d, out, monkeypatch)
    state = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FlowtraceError, match=r"cannot resume .*subtract_median False -> True"):
        flowtrace(d, 5, out, backend="numpy", progress=False, resume=True, subtract_median=True)
    with pytest.raises(FlowtraceError, match=r"frames_to_merge 5 -> 6"):
        flowtrace(d, 6, out, backend="numpy", progress=False, resume=True)
    frame = d / "f0002.tif"
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    with pytest.raises(FlowtraceError, match=r"source files \(one was renamed, replaced or "
                                             r"modified\)"):
        flowtrace(d, 5, out, backend="numpy", progress=False, resume=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == state  # refused: nothing written
    assert main([str(d), "5", str(out), "--resume", "--subtract-median", "-q"]) == 2


def test_a_moved_output_folder_still_resumes(movie_dir, tmp_path, monkeypatch):
    d, _ = movie_dir
    reference = flowtrace(d, 5, tmp_path / "ref", backend="numpy", progress=False)
    out = tmp_path / "out"
    stop_at_image(10, d, out, monkeypatch)
    moved = out.rename(tmp_path / "elsewhere")
    result = flowtrace(d, 5, moved, backend="numpy", progress=False, resume=True)
    assert file_bytes(result) == file_bytes(reference)
    assert read_manifest(moved).output["path"] == str(moved.resolve())


def test_resume_of_nothing_starts_and_of_a_finished_output_does_nothing(movie_dir, tmp_path):
    d, _ = movie_dir
    out = tmp_path / "out"
    first = flowtrace(d, 5, out, backend="numpy", progress=False, resume=True)
    assert read_manifest(out).is_complete
    before = stamps(out, [p.name for p in first])
    again = flowtrace(d, 5, out, backend="numpy", progress=False, resume=True)
    assert again == first and stamps(out, list(before)) == before


def test_a_new_run_over_an_unfinished_one_says_so_and_starts_over(movie_dir, tmp_path, monkeypatch,
                                                                  capsys):
    d, _ = movie_dir
    out = tmp_path / "out"
    stop_at_image(5, d, out, monkeypatch)
    capsys.readouterr()
    assert main([str(d), "5", str(out), "--backend", "numpy"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"unfinished run \(5 of 56 images\); starting over", err)
    assert read_manifest(out).is_complete


def test_single_file_output_is_started_over_or_kept(movie_dir, tmp_path, monkeypatch, caplog):
    d, _ = movie_dir
    reference = tifffile.imread(flowtrace(d, 5, tmp_path / "ref.tif", backend="numpy",
                                          progress=False))
    out = tmp_path / "s.tif"
    monkeypatch.setattr(TiffStackWriter, "_append", fail_at(TiffStackWriter._append, 20, ENOSPC))
    with pytest.raises(IncompleteRunError, match=rf"no space left on device writing {out}; "
                                                 rf"{out} was not written; free space"):
        flowtrace(d, 5, out, backend="numpy", progress=False)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie", "ref.tif",
                                                          "ref.tif.flowtrace.json",
                                                          "s.tif.flowtrace.json"]
    assert read_manifest(out).n_complete == 0
    assert flowtrace(d, 5, out, backend="numpy", progress=False, resume=True) == out
    assert "cannot be resumed: starting it over" in caplog.text
    np.testing.assert_array_equal(tifffile.imread(out), reference)
    stamp = out.stat().st_mtime_ns
    flowtrace(d, 5, out, backend="numpy", progress=False, resume=True)
    assert out.stat().st_mtime_ns == stamp and read_manifest(out).is_complete


def test_manifest_records_the_run(movie_dir, tmp_path):
    d, _ = movie_dir
    out = tmp_path / "out.tif"
    assert read_manifest(out) is None
    flowtrace(d, 5, out, backend="numpy", progress=False, normalize="global", frames_to_skip=2)
    m = read_manifest(out)
    assert m.is_complete and m.n_images == 26 and m.frames_to_merge == 5
    assert m.options["normalize"] == "global" and m.options["frames_to_skip"] == 2
    assert m.options["windows"] == "sliding" and m.global_peak > 0
    assert m.source["n_frames"] == 30 and m.source["files"] == 30
    assert m.source["path"] == str(d.resolve()) and m.output["kind"] == "tiff-stack"
    raw = json.loads((tmp_path / "out.tif.flowtrace.json").read_text())
    assert raw["manifest"] == 1 and raw["complete"] == [[0, 26]]
    assert to_ranges([4, 0, 1, 2, 9]) == [[0, 3], [4, 5], [9, 10]]


def test_unreadable_manifest_is_refused_on_resume_and_replaced_otherwise(movie_dir, tmp_path):
    d, _ = movie_dir
    out = tmp_path / "out"
    out.mkdir()
    (out / "flowtrace.json").write_text("{not json")
    with pytest.raises(FlowtraceError, match="manifest .* is unreadable"):
        flowtrace(d, 5, out, backend="numpy", progress=False, resume=True)
    flowtrace(d, 5, out, backend="numpy", progress=False)
    assert read_manifest(out).is_complete


# ------------------------------------------------------------------ disk full and OS errors

def _short_write(real_write):
    """``own_files._write`` that writes half of an image's bytes, then fails with ENOSPC.

    Manifests (JSON) are written as they are: the image write is what fails.
    """

    def fake_write(fh, data):
        if isinstance(data, bytes) and data.startswith(b"{"):
            return real_write(fh, data)
        whole = b"".join(bytes(memoryview(part)) for part in
                         (data if isinstance(data, list) else [data]))
        fh.write(whole[: len(whole) // 2])
        raise ENOSPC

    return fake_write


INJECTIONS = {
    # where: (output, format, patch(monkeypatch), message pattern, resumable)
    "png bytes": ("out", None, lambda mp: mp.setattr(own_files, "_write",
                                                     _short_write(own_files._write)),
                  r"no space left on device writing .*f0000_streamlines_frames5\.png", True),
    "tiff bytes": ("out", "tiff", lambda mp: mp.setattr(own_files, "_write",
                                                        _short_write(own_files._write)),
                   r"no space left on device writing .*f0000_streamlines_frames5\.tif", True),
    "stack page": ("s.tif", None, lambda mp: mp.setattr(
        TiffStackWriter, "_append", fail_at(TiffStackWriter._append, 7, ENOSPC)),
        r"no space left on device writing .*s\.tif", False),
    "stack short write": ("s.tif", None, lambda mp: mp.setattr(
        TiffStackWriter, "_append", fail_at(TiffStackWriter._append, 7,
                                           OSError("262144 requested and 261808 written"))),
        r"(no space left on device|short write, disk full or over quota .*) writing .*s\.tif",
        False),
    "stack rename": ("s.tif", None, lambda mp: mp.setattr(
        writers.PartialFile, "commit", fail_at(writers.PartialFile.commit, 0,
                                              OSError(errno.EIO, os.strerror(errno.EIO)))),
        r"input/output error writing .*s\.tif", False),
    "manifest update": ("out", None, lambda mp: mp.setattr(
        Manifest, "write", fail_at(Manifest.write, 1, ENOSPC, persist=True)),
        r"no space left on device writing .*flowtrace\.json", True),
}


@pytest.mark.parametrize("where", sorted(INJECTIONS))
def test_injected_os_errors_are_one_line_leave_no_partial_file_and_resume(
        movie_dir, tmp_path, monkeypatch, capsys, where):
    d, _ = movie_dir
    name, fmt, patch, pattern, resumable = INJECTIONS[where]
    out = tmp_path / name
    fmt_args = {"format": fmt} if fmt else {}
    reference = flowtrace(d, 5, tmp_path / f"ref_{name}", backend="numpy", progress=False,
                          **fmt_args)
    patch(monkeypatch)
    with pytest.raises(IncompleteRunError, match=pattern) as info:
        flowtrace(d, 5, out, backend="numpy", progress=False, use_parallel=False, **fmt_args)
    monkeypatch.undo()
    folder = out if resumable else tmp_path
    assert debris(folder) == [] and info.value.output == out
    if resumable:
        names = [p.name for p in reference]
        manifest = read_manifest(out)
        assert manifest.n_complete == info.value.completed < len(names)
        kept = [names[i] for i in manifest.complete_indices()]
        assert_same_images(file_bytes(out / n for n in kept),
                           file_bytes(reference[i] for i in manifest.complete_indices()),
                           tmp_path / "differing")
    else:
        assert not out.exists()
    # The command line, into a new output: one line, exit 1.
    patch(monkeypatch)
    capsys.readouterr()
    code = main([str(d), "5", str(tmp_path / "cli" / name), "--backend", "numpy",
                 "--no-parallel", "-q"] + (["--format", fmt] if fmt else []))
    monkeypatch.undo()
    assert code == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("flowtrace: error: ") and re.search(pattern, line)
    # Once the cause is gone, --resume finishes, equal to an uninterrupted run.
    result = flowtrace(d, 5, out, backend="numpy", progress=False, resume=True, **fmt_args)
    if resumable:
        assert file_bytes(result) == file_bytes(reference)
    else:
        np.testing.assert_array_equal(tifffile.imread(result), tifffile.imread(reference))
    assert debris(folder) == []


@pytest.mark.parametrize("call", [0, 1])
def test_os_errors_before_the_first_image_are_refusals(movie_dir, tmp_path, monkeypatch, capsys,
                                                       call):
    d, _ = movie_dir
    out = tmp_path / "out"
    if call == 0:  # the lock
        from flowtrace_gpu.runs import lock
        monkeypatch.setattr(lock, "_write_holder", fail_at(lock._write_holder, 0, ENOSPC))
        pattern = r"cannot lock the output: no space left on device writing .*flowtrace\.lock"
    else:  # the first manifest
        monkeypatch.setattr(Manifest, "write", fail_at(Manifest.write, 0, ENOSPC))
        pattern = r"cannot write the manifest: no space left on device writing .*flowtrace\.json"
    with pytest.raises(FlowtraceError, match=pattern) as info:
        flowtrace(d, 5, out, backend="numpy", progress=False)
    assert not isinstance(info.value, IncompleteRunError)
    assert not list(out.glob("*.png")) and debris(out) == []


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 192 KiB tmpfs (CI runs as root), unmounted afterwards; skipped where mount fails."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs to fill ({exc})")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (not root?): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_a_real_full_disk_then_resume_once_space_is_freed(tmp_path, small_tmpfs, capsys):
    d = tmp_path / "movie"
    d.mkdir()
    noise = np.random.default_rng(0)
    for i in range(80):  # noisy frames: PNGs that do not shrink, to fill the disk soon
        tifffile.imwrite(d / f"f{i:04d}.tif", noise.integers(0, 256, (64, 64), dtype=np.uint8))
    reference = flowtrace(d, 5, tmp_path / "ref", backend="numpy", progress=False)
    # A single file on the full disk: nothing of it is left.
    with pytest.raises(IncompleteRunError, match=r"no space left on device writing .*s\.tif; "
                                                 r".*s\.tif was not written"):
        flowtrace(d, 5, small_tmpfs / "s.tif", backend="numpy", progress=False)
    assert not (small_tmpfs / "s.tif").exists() and debris(small_tmpfs) == []
    out = small_tmpfs / "out"
    with pytest.raises(IncompleteRunError, match=r"no space left on device writing .*\.png; "
                                                 r"\d+ of 76 images are complete") as info:
        flowtrace(d, 5, out, backend="numpy", progress=False)
    manifest = assert_manifest_true(out, [p.name for p in reference])
    assert 0 < manifest.n_complete == info.value.completed < 76 and debris(out) == []
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_tmpfs)], check=True, timeout=30)
    result = flowtrace(d, 5, out, backend="numpy", progress=False, resume=True)
    assert file_bytes(result) == file_bytes(reference)


# ------------------------------------------------------------------ inputs and names

def _video(path: Path, movie) -> None:
    from flowtrace_gpu.io.formats import open_writer

    writer = open_writer(path, [str(i) for i in range(len(movie))], fps=10)
    for i, frame in enumerate(movie):
        writer.write(i, frame)
    writer.close()


@pytest.mark.parametrize("name", ["ts.tif", "car.mp4"])
def test_output_that_is_the_input_is_refused(tmp_path, capsys, name):
    movie = synthetic_movie(12, (32, 32))
    src = tmp_path / name
    if name.endswith(".tif"):
        tifffile.imwrite(src, movie)
    else:
        _video(src, movie)
    before = src.read_bytes()
    with pytest.raises(FlowtraceError, match=r"is the input .*destroy the recording"):
        flowtrace(src, 2, src, progress=False)
    with pytest.raises(FlowtraceError, match="is the input"):
        flowtrace(src, 2, tmp_path / "." / name, progress=False)
    capsys.readouterr()
    assert main([str(src), "2", str(src)]) == 2
    assert one_line(capsys.readouterr().err).startswith("flowtrace: error: output ")
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_output_over_a_frame_of_the_folder_is_refused(movie_dir):
    d, _ = movie_dir
    before = (d / "f0003.tif").read_bytes()
    with pytest.raises(FlowtraceError, match=r"f0003\.tif is the input"):
        flowtrace(d, 2, d / "f0003.tif", progress=False)
    assert (d / "f0003.tif").read_bytes() == before


@pytest.mark.parametrize("out,fmt", [("same", None), ("same", "tiff"), ("in.tif", None),
                                     ("in.mp4", None)])
def test_running_twice_into_the_input_folder_never_reads_outputs(movie_dir, out, fmt):
    d, movie = movie_dir
    target = out if out == "same" else d / out
    kwargs = dict(backend="numpy", progress=False, format=fmt)
    first = flowtrace(d, 5, target, **kwargs)
    frames = sorted(p.name for p in d.glob("f????.tif"))
    second = flowtrace(d, 5, target, **kwargs)
    assert second == first
    assert ImageFolderSource(d).n_frames == 60 == len(frames)
    if isinstance(first, list):
        assert len(first) == 56


def test_temporary_files_of_dead_runs_are_never_read_and_are_removed(movie_dir):
    d, movie = movie_dir
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = [f".f0000.{dead}.part.tif",  # earlier versions' names
             f".x_streamlines_frames5.png.ft-{own_files.host_tag()}-{dead}-3.part.tif"]
    for name in stale:
        tifffile.imwrite(d / name, movie[0])
    live = d / f".y.tif.ft-{own_files.host_tag()}-{os.getpid()}-9.part.tif"
    tifffile.imwrite(live, movie[0])
    assert ImageFolderSource(d).n_frames == 60
    assert len(flowtrace(d, 5, backend="numpy", progress=False)) == 56
    assert not any((d / name).exists() for name in stale)
    assert live.exists()  # this process is alive: its file is not debris


def test_outputs_with_colliding_names_get_distinct_names(tmp_path):
    from PIL import Image

    d = tmp_path / "movie"
    d.mkdir()
    for i, frame in enumerate(synthetic_movie(12, (16, 16))):
        if i % 2:
            tifffile.imwrite(d / f"f{i // 2:03d}.tif", frame)
        else:
            Image.fromarray(frame).save(d / f"f{i // 2:03d}.png")
    for parallel in (True, False):
        out = tmp_path / f"out{parallel}"
        result = flowtrace(d, 3, out, backend="numpy", progress=False, use_parallel=parallel)
        assert len(result) == 10 == len({p.name for p in result})
        assert sorted(p.name for p in out.glob("*.png")) == sorted(p.name for p in result)
        assert "f000_png_streamlines_frames3.png" in {p.name for p in result}
    assert own_files.output_names(["a", "A", "b"], "_s") == ["a_0_s", "A_1_s", "b_s"]


# ------------------------------------------------------------------ the lock

def test_a_live_run_holds_the_output_and_a_dead_ones_lock_is_taken_over(movie_dir, tmp_path,
                                                                       capsys):
    d, _ = movie_dir
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from flowtrace_gpu.runs.lock import OutputLock
            OutputLock({str(out / 'flowtrace.lock')!r}).acquire()
            print('held', flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FlowtraceError, match=rf"in use by flowtrace process {holder.pid} on "):
            flowtrace(d, 5, out, backend="numpy", progress=False)
        capsys.readouterr()
        assert main([str(d), "5", str(out)]) == 2
        assert f"process {holder.pid}" in one_line(capsys.readouterr().err)
    finally:
        holder.kill()
        holder.wait()
    assert not list(out.glob("*.png"))
    capsys.readouterr()
    assert main([str(d), "5", str(out), "--backend", "numpy", "-q"]) == 0
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and f"took over the lock {out / 'flowtrace.lock'} left by " \
                                      f"process {holder.pid}" in note
    assert not (out / "flowtrace.lock").exists()


def test_a_lock_from_another_host_is_honoured(movie_dir, tmp_path):
    d, _ = movie_dir
    out = tmp_path / "out"
    out.mkdir()
    (out / "flowtrace.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(FlowtraceError, match=r"locked by flowtrace process 1 on elsewhere .*"
                                             r"delete .*flowtrace\.lock"):
        flowtrace(d, 5, out, backend="numpy", progress=False)
    assert this_host() != "elsewhere"


def test_lock_is_released_after_errors_too(movie_dir, tmp_path, monkeypatch):
    d, _ = movie_dir
    out = tmp_path / "out"
    monkeypatch.setattr(writers.PngFolderWriter, "write",
                        fail_at(writers.PngFolderWriter.write, 3, RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        flowtrace(d, 5, out, backend="numpy", progress=False)
    assert not (out / "flowtrace.lock").exists()
    with OutputLock(out / "flowtrace.lock"):
        with pytest.raises(FlowtraceError, match=f"process {os.getpid()}"):
            OutputLock(out / "flowtrace.lock").acquire()


# ------------------------------------------------------------------ errors found mid-run

def test_a_frame_cut_short_names_file_frame_and_progress(movie_dir, tmp_path, capsys):
    d, _ = movie_dir
    bad = d / "f0040.tif"
    # Header fine, data broken: a zlib frame whose compressed bytes are zeroed
    # (a cut file is refused up front, as its strips would lie past its end).
    tifffile.imwrite(bad, tifffile.imread(bad), compression="zlib")
    with tifffile.TiffFile(bad) as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    data = bytearray(bad.read_bytes())
    data[offset:offset + count] = bytes(count)
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(IncompleteRunError) as info:
        flowtrace(d, 5, out, backend="numpy", progress=False)
    message = str(info.value)
    assert "stopped at frame 40" in message and "f0040.tif" in message
    # Every window before the bad frame was written: 0..35.
    assert info.value.completed == 36 and "36 of 56 images are complete" in message
    assert read_manifest(out).complete == [[0, 36]]
    capsys.readouterr()
    assert main([str(d), "5", str(tmp_path / "cli"), "-q"]) == 1
    assert "stopped at frame 40" in one_line(capsys.readouterr().err)


def test_non_finite_float_frames_are_refused_naming_the_frame(tmp_path):
    movie = np.random.default_rng(0).random((10, 6, 6)).astype(np.float32)
    movie[4, 2, 3] = np.inf
    with pytest.raises(FlowtraceError, match=r"frame 4 holds 1 non-finite values"):
        flowtrace_array(movie, 3, backend="numpy", progress=False)
    movie[4, 2, 3] = np.nan
    with pytest.raises(FlowtraceError, match=r"frame 4 holds 1 non-finite"):
        flowtrace_array(movie, 3, backend="numpy", progress=False, normalize="global")
    d = tmp_path / "floats"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"f{i}.tif", frame)
    with pytest.raises(IncompleteRunError, match=r"stopped at frame 4: .*f4\.tif holds 1 "
                                                 r"non-finite .*; 2 of 8 images are complete"):
        flowtrace(d, 3, tmp_path / "out", backend="numpy", progress=False)


@pytest.mark.parametrize("kwargs,match", [
    (dict(fps=1e-9), "fps=1e-09 cannot be held"),
    (dict(frames_to_skip=True), "frames_to_skip"),
    (dict(resume=1), "resume must be True or False"),
])
def test_bad_run_values_are_refused(movie_dir, tmp_path, kwargs, match):
    d, _ = movie_dir
    with pytest.raises(FlowtraceError, match=match):
        flowtrace(d, 5, tmp_path / "v.mp4", **kwargs)
    assert not (tmp_path / "v.mp4").exists()


# ------------------------------------------------------------------ signals and kills

def _default_signals() -> None:
    # A child inherits ignored signals: a suite started in the background (as
    # `cmd &` in a script) ignores SIGINT, and so would the run under test.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _cli(src: Path, out: Path, *extra, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "flowtrace_gpu", str(src), "10", str(out), "--backend", "numpy",
         "-q", *extra], stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, **(env or {})}, preexec_fn=_default_signals)


def _wait_for(predicate, proc, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before {what}; "
                        f"make the movie longer: {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def long_movie(tmp_path_factory):
    """600 frames: a run of about a second, long enough to be stopped mid-way."""
    d = tmp_path_factory.mktemp("long") / "movie"
    make_folder(d, 600, shape=(96, 96), seed=7)
    reference = flowtrace(d, 10, d.parent / "reference", backend="numpy", progress=False)
    return d, file_bytes(reference)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_cleanly_and_resume(long_movie, tmp_path, sig):
    d, expected = long_movie
    out = tmp_path / "out"
    proc = _cli(d, out)
    _wait_for(lambda: len(list(out.glob("*.png"))) >= 20, proc, "20 images")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    match = re.fullmatch(r"flowtrace: interrupted after (\d+) of 591 images; "
                         r"rerun with --resume to finish", one_line(err))
    assert match, err
    manifest = assert_manifest_true(out, sorted(expected))
    assert manifest.n_complete == int(match[1]) >= 20
    assert debris(out) == []
    kept = [sorted(expected)[i] for i in manifest.complete_indices()]
    before = stamps(out, kept)
    proc = _cli(d, out, "--resume")
    assert proc.communicate(timeout=120)[1] == "" and proc.returncode == 0
    same_images(file_bytes(sorted(out.glob("*.png"))), expected, d)
    assert stamps(out, kept) == before


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(long_movie, tmp_path):
    d, expected = long_movie
    names = sorted(expected)
    out = tmp_path / "out"
    proc = _cli(d, out, env={"FLOWTRACE_MANIFEST_INTERVAL": "0.02"})

    def recorded():
        try:
            return read_manifest(out).n_complete >= 30
        except (FlowtraceError, AttributeError):
            return False

    _wait_for(recorded, proc, "30 images in the manifest")
    proc.kill()
    proc.wait()
    manifest = assert_manifest_true(out, names)
    assert not manifest.is_complete
    kept = [names[i] for i in manifest.complete_indices()]
    before = stamps(out, kept)
    assert (out / "flowtrace.lock").exists()  # the killed run could not remove it
    proc = _cli(d, out, "--resume", env={"FLOWTRACE_MANIFEST_INTERVAL": "0.02"})
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, err
    assert "took over the lock" in err and "Traceback" not in err
    same_images(file_bytes(sorted(out.glob("*.png"))), expected, d)
    assert stamps(out, kept) == before
    assert debris(out) == [] and read_manifest(out).is_complete


@pytest.mark.slow
def test_ctrl_c_in_a_script_raises_keyboard_interrupt_after_cleanup(long_movie, tmp_path):
    d, _ = long_movie
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import signal, sys
        from flowtrace_gpu import flowtrace, RunInterrupted
        try:
            flowtrace({str(d)!r}, 10, {str(out)!r}, backend='numpy', progress=False)
        except KeyboardInterrupt as exc:
            print(type(exc).__name__, exc.completed, exc.total,
                  signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                  signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=_default_signals)
    _wait_for(lambda: len(list(out.glob("*.png"))) >= 10, proc, "10 images")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    kind, done, total, int_restored, term_restored = stdout.split()
    assert kind == "RunInterrupted" and int(done) == read_manifest(out).n_complete
    assert total == "591" and int_restored == term_restored == "True", stderr
    assert debris(out) == []


def test_signal_handlers_only_in_the_main_thread_and_restored(movie_dir, tmp_path):
    d, _ = movie_dir
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    results = []
    thread = threading.Thread(target=lambda: results.append(
        flowtrace(d, 5, tmp_path / "t", backend="numpy", progress=False)))
    thread.start()
    thread.join()
    assert len(results[0]) == 56
    flowtrace(d, 5, tmp_path / "m", backend="numpy", progress=False)
    assert {s: signal.getsignal(s) for s in before} == before
