"""Writes that cannot be redirected: links and strangers' files planted in a shared output.

Another user of a group-writable folder can plant symbolic links (or hard
links, pipes, their own files) under the names a run will write. Each test
plants them, runs flowtrace beside them, and checks that the run either
completes or refuses with one line, and that no file outside the output
is touched (content and modification time; no file appears beside them).

CI runs as root, where permission bits do not stop writes: the read-only
folder runs the command line as another user (uid 65534) there, and the
foreign lock is given to that uid with ``os.chown``.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, flowtrace
from flowtrace_gpu.cli import main
from flowtrace_gpu.io import own_files
from flowtrace_gpu.runs.lock import OutputLock
from flowtrace_gpu.runs.manifest import read_manifest
from flowtrace_gpu.runs.stale import remove_stale
from flowtrace_gpu.synthetic import synthetic_movie

F = 3
N_FRAMES = 12
N_IMAGES = N_FRAMES - F + 1
NOBODY = 65534
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False

#: Output kinds: output name, extra flowtrace arguments, the final files a run writes.
KINDS = {
    "png": ("out", {}),
    "tiff": ("out", {"format": "tiff"}),
    "stack": ("s.tif", {}),
    "video": ("v.mp4", {}),
    "zarr": ("a.zarr", {}),
}


@pytest.fixture
def movie(tmp_path) -> Path:
    d = tmp_path / "movie"
    d.mkdir()
    for i, frame in enumerate(synthetic_movie(N_FRAMES, (16, 16), n_particles=10, seed=3)):
        tifffile.imwrite(d / f"f{i:04d}.tif", frame)
    return d


@pytest.fixture
def victim(tmp_path) -> Path:
    """A folder of files the person running flowtrace cares about, outside every output."""
    home = tmp_path / "home"
    home.mkdir()
    for i in range(4):
        (home / f"thesis{i}.txt").write_bytes(f"chapter {i}\n".encode() * 50)
        os.utime(home / f"thesis{i}.txt", ns=(10**18, 10**18))  # any write would move it
    return home


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder``: its bytes and modification time (links not followed)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        st = os.lstat(path)
        found[str(path.relative_to(folder))] = (
            path.read_bytes() if stat.S_ISREG(st.st_mode) else None, st.st_mtime_ns)
    return found


def trace(movie: Path, out: Path, **kwargs):
    return flowtrace(movie, F, out, backend="numpy", progress=False, **kwargs)


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def final_names(kind: str, out: Path) -> list[str]:
    """Names a run writes in the output's folder (the images of a folder output)."""
    if kind in ("png", "tiff"):
        suffix = ".png" if kind == "png" else ".tif"
        return [f"f{i:04d}_streamlines_frames{F}{suffix}" for i in range(N_IMAGES)] + [
            "flowtrace.json"]
    return [out.name, out.name + ".flowtrace.json"]


def old_temp_names(name: str, pids) -> list[str]:
    """The predictable temporary names of earlier versions: host hash, PID and a counter."""
    names = []
    tail = Path(name).suffix
    for pid in pids:
        names.append(f".{name}.{pid}.part")
        names.append(f".{Path(name).stem}.{pid}.part{tail}")
        for n in range(40):
            for end in ("", tail):
                names.append(f".{name}.ft-{own_files.host_tag()}-{pid}-{n}.part{end}")
    return names


def plant_links(folder: Path, names, victim: Path) -> list[Path]:
    """A symbolic link at each name in ``folder``, each to one of ``victim``'s files."""
    targets = sorted(victim.iterdir())
    planted = []
    for i, name in enumerate(dict.fromkeys(names)):
        link = folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(targets[i % len(targets)])
        planted.append(link)
    return planted


# ------------------------------------------------------------------ temporary names


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_links_at_the_old_predictable_temporary_names_are_never_followed(movie, tmp_path, victim,
                                                                          kind):
    name, kwargs = KINDS[kind]
    out = tmp_path / name
    folder = out if kind in ("png", "tiff") else tmp_path
    folder.mkdir(exist_ok=True)
    pids = range(os.getpid(), os.getpid() + 3)  # this run's PID and the next ones
    names = [t for final in final_names(kind, out) + [final_names(kind, out)[-1] + ".reserve"]
             for t in old_temp_names(final, pids)]
    planted = plant_links(folder, names, victim)
    before = snapshot(victim)
    result = trace(movie, out, **kwargs)
    assert snapshot(victim) == before
    assert all(link.is_symlink() for link in planted)  # neither followed nor removed
    assert read_manifest(out).is_complete
    if kind in ("png", "tiff"):
        assert len(result) == N_IMAGES and all(p.is_file() and not p.is_symlink() for p in result)
    else:
        assert Path(result) == out and not out.is_symlink()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_drawn_temporary_name_that_exists_is_skipped_never_opened(movie, tmp_path, victim,
                                                                     monkeypatch, kind):
    """The random part is forced to repeat: every name drawn first is a planted link."""
    name, kwargs = KINDS[kind]
    out = tmp_path / name
    taken = 3  # the first three draws for every file are names a link holds already

    class Rigged:  # stands in for the secrets module: draws 0, 1, 2, ...
        drawn = 0

        @classmethod
        def token_hex(cls, nbytes):
            cls.drawn += 1
            return f"{cls.drawn - 1:0{2 * nbytes}x}"

    planted = []
    real_create = own_files.create_temp
    targets = sorted(victim.iterdir())
    one_at_a_time = threading.Lock()  # writer threads: each call's draws follow its links

    def create_beside_links(path, keep_suffix=False, *, dir_fd=None):
        with one_at_a_time:
            return plant_then_create(Path(path), keep_suffix, dir_fd)

    def plant_then_create(path, keep_suffix, dir_fd):
        tail = path.suffix if keep_suffix else ""
        for k in range(taken):
            link = (f".{path.name}.ft-{own_files.host_tag()}-{os.getpid()}-"
                    f"{Rigged.drawn + k:016x}.part{tail}")
            if dir_fd is None:
                os.symlink(targets[k], path.with_name(link))
            else:
                os.symlink(targets[k], link, dir_fd=dir_fd)
            planted.append(link)
        return real_create(path, keep_suffix, dir_fd=dir_fd)

    from flowtrace_gpu.io import writers
    from flowtrace_gpu.runs import manifest

    monkeypatch.setattr(own_files, "secrets", Rigged)
    for module in (own_files, writers, manifest):  # each calls it by its own name
        monkeypatch.setattr(module, "create_temp", create_beside_links)
    before = snapshot(victim)
    trace(movie, out, **kwargs)
    assert snapshot(victim) == before
    calls = len(planted) // taken
    assert calls >= 2 and Rigged.drawn == (taken + 1) * calls  # each call skipped every link
    assert read_manifest(out).is_complete


def test_temporary_names_are_unpredictable():
    names = {own_files.temp_name("x.png") for _ in range(1000)}
    assert len(names) == 1000
    random_parts = {n.split("-")[-1].split(".")[0] for n in names}
    assert len(random_parts) == 1000 and all(len(p) == 16 for p in random_parts)


def test_create_temp_refuses_to_reuse_any_existing_name(tmp_path, victim, monkeypatch):
    tokens = iter(["a" * 16, "b" * 16, "c" * 16])

    class Rigged:
        @staticmethod
        def token_hex(nbytes):
            return next(tokens)

    monkeypatch.setattr(own_files, "secrets", Rigged)
    tag = f"{own_files.host_tag()}-{os.getpid()}"
    (tmp_path / f".x.png.ft-{tag}-{'a' * 16}.part").symlink_to(victim / "thesis0.txt")
    (tmp_path / f".x.png.ft-{tag}-{'b' * 16}.part").write_bytes(b"someone's")
    before = snapshot(victim)
    fd, tmp = own_files.create_temp(tmp_path / "x.png")
    os.close(fd)
    assert tmp.name == f".x.png.ft-{tag}-{'c' * 16}.part"
    assert (tmp_path / f".x.png.ft-{tag}-{'b' * 16}.part").read_bytes() == b"someone's"
    assert snapshot(victim) == before


# ------------------------------------------------------------------ the lock


def test_a_link_as_the_lock_is_refused_and_its_target_untouched(movie, tmp_path, victim, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "flowtrace.lock").symlink_to(victim / "thesis0.txt")
    before = snapshot(victim)
    with pytest.raises(FlowtraceError, match=r"lock .*flowtrace\.lock is a symbolic link to "
                                             r".*thesis0\.txt.*delete .*flowtrace\.lock"):
        trace(movie, out)
    assert main([str(movie), str(F), str(out), "--backend", "numpy", "-q"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "symbolic link" in line and "delete" in line
    assert snapshot(victim) == before
    assert not any(own_files.OUTPUT_NAME.search(p.name) for p in out.iterdir())


@pytest.mark.parametrize("kind", ["stack", "video", "zarr"])
def test_a_link_as_the_lock_beside_a_file_output_is_refused(movie, tmp_path, victim, kind):
    name, kwargs = KINDS[kind]
    out = tmp_path / name
    Path(f"{out}.flowtrace.lock").symlink_to(victim / "thesis1.txt")
    before = snapshot(victim)
    with pytest.raises(FlowtraceError, match="symbolic link"):
        trace(movie, out, **kwargs)
    assert snapshot(victim) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["home", "movie", f"{name}.flowtrace.lock"])


def test_a_hard_link_a_folder_or_a_pipe_as_the_lock_is_refused(movie, tmp_path, victim):
    cases = {"hard": ("a file with 2 hard links", lambda p: os.link(victim / "thesis2.txt", p)),
             "folder": ("a folder", os.mkdir),
             "pipe": ("not a regular file", os.mkfifo)}
    for label, (found, make) in cases.items():
        out = tmp_path / label
        out.mkdir()
        make(out / "flowtrace.lock")
        before = snapshot(victim)
        with pytest.raises(FlowtraceError, match=f"flowtrace.lock is {found}"):
            trace(movie, out)
        assert snapshot(victim) == before


def test_a_lock_of_another_user_is_refused_and_left_as_it_is(movie, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    lock = out / "flowtrace.lock"
    lock.write_text('{"pid": 1, "host": "elsewhere"}')
    if ROOT:
        os.chown(lock, NOBODY, NOBODY)  # a real file of another user
    else:  # the file is ours: this process looks like another user to it
        monkeypatch.setattr(os, "geteuid", lambda: os.stat(lock).st_uid + 1)
    before = (lock.read_bytes(), os.stat(lock).st_mtime_ns)
    with pytest.raises(FlowtraceError, match=r"lock .* is a file of (user .*)?uid \d+.*delete"):
        trace(movie, out)
    assert main([str(movie), str(F), str(out), "--backend", "numpy", "-q"]) == 2
    assert "delete" in one_line(capsys.readouterr().err)
    assert (lock.read_bytes(), os.stat(lock).st_mtime_ns) == before
    assert sorted(p.name for p in out.iterdir()) == ["flowtrace.lock"]


def test_the_own_lock_is_still_taken_and_released(tmp_path):
    with OutputLock(tmp_path / "flowtrace.lock") as lock:
        assert stat.S_IMODE(os.stat(lock.path).st_mode) & 0o200
    assert not (tmp_path / "flowtrace.lock").exists()


# ------------------------------------------------------------------ the manifest


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_link_as_the_manifest_is_replaced_not_written_through(movie, tmp_path, victim, capsys,
                                                                 kind):
    name, kwargs = KINDS[kind]
    out = tmp_path / name
    manifest = out / "flowtrace.json" if kind in ("png", "tiff") else Path(f"{out}.flowtrace.json")
    manifest.parent.mkdir(exist_ok=True)
    manifest.symlink_to(victim / "thesis3.txt")
    before = snapshot(victim)
    with pytest.raises(FlowtraceError, match=r"manifest .* is a symbolic link .*delete"):
        trace(movie, out, resume=True, **kwargs)  # a resume reads no manifest through a link
    fmt = ["--format", kwargs["format"]] if kwargs else []
    assert main([str(movie), str(F), str(out), "--backend", "numpy", "-q", "--resume", *fmt]) == 2
    assert "symbolic link" in one_line(capsys.readouterr().err)
    trace(movie, out, **kwargs)
    assert not manifest.is_symlink() and read_manifest(out).is_complete
    assert snapshot(victim) == before


# ------------------------------------------------------------------ links inside outputs


@pytest.mark.parametrize("kind", ["png", "tiff", "stack", "video"])
def test_links_at_the_final_names_are_replaced_not_written_through(movie, tmp_path, victim, kind):
    name, kwargs = KINDS[kind]
    out = tmp_path / name
    folder = out if kind in ("png", "tiff") else tmp_path
    folder.mkdir(exist_ok=True)
    planted = plant_links(folder, final_names(kind, out), victim)
    before = snapshot(victim)
    trace(movie, out, **kwargs)
    assert snapshot(victim) == before
    assert not any(link.is_symlink() for link in planted)
    assert read_manifest(out).is_complete


def test_links_planted_inside_a_zarr_output_are_refused_or_replaced(movie, tmp_path, victim,
                                                                    capsys):
    from flowtrace_gpu.io.zarr_store import chunk_file

    out = tmp_path / "a.zarr"
    trace(movie, out)
    before = snapshot(victim)
    # A file link at a chunk's final name is replaced.
    chunk = chunk_file(out, 5, 3)
    chunk.unlink()
    chunk.symlink_to(victim / "thesis0.txt")
    # Links at zarr's and flowtrace's temporary names beside it are neither followed nor removed.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    beside = plant_links(chunk.parent, [f"0.{'0' * 32}.partial"] + old_temp_names("0", [dead]),
                         victim)
    trace(movie, out)
    assert not chunk.is_symlink() and chunk.is_file()
    assert all(link.is_symlink() for link in beside)
    assert snapshot(victim) == before
    # A folder link inside the array is refused with one line, and nothing written through it.
    folder = chunk_file(out, 3, 3).parents[1]
    shutil.rmtree(folder)
    folder.symlink_to(victim, target_is_directory=True)
    assert main([str(movie), str(F), str(out), "--backend", "numpy", "-q", "--resume"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "symbolic link" in line and f"delete {folder}" in line
    assert snapshot(victim) == before
    folder.unlink()
    assert main([str(movie), str(F), str(out), "--backend", "numpy", "-q", "--resume"]) == 0
    assert read_manifest(out).is_complete


# ------------------------------------------------------------------ stale temporaries


def test_stale_cleanup_removes_only_regular_files_of_the_runs_own_names(tmp_path, victim):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    tag = f"{own_files.host_tag()}-{dead}"
    debris = tmp_path / f".x.png.ft-{tag}-{'1' * 16}.part"
    debris.write_bytes(b"half an image")
    link = tmp_path / f".y.png.ft-{tag}-{'2' * 16}.part"
    link.symlink_to(victim / "thesis0.txt")
    folder = tmp_path / f".z.png.ft-{tag}-{'3' * 16}.part"
    folder.mkdir()
    (folder / "inside").write_bytes(b"keep")
    strangers = [tmp_path / name for name in
                 (f"x.png.ft-{tag}-1.part", f".x.png.ft-{tag}-1.partial", "notes.part")]
    for path in strangers:
        path.write_bytes(b"not flowtrace's")
    before = snapshot(victim)
    assert remove_stale(tmp_path) == [debris]
    assert link.is_symlink() and (folder / "inside").exists()
    assert all(p.read_bytes() == b"not flowtrace's" for p in strangers)
    assert snapshot(victim) == before


# ------------------------------------------------------------------ a read-only output


def run_cli_as_user(args, uid: int | None, timeout: float = 120) -> tuple[int, str]:
    """``main(args)`` in a forked child, as ``uid`` where given (root only); its status and stderr.

    A fork, not a new interpreter: the child needs no access to the Python
    installation (often under /root), only to the files the run touches.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 97
        try:
            os.close(r)
            os.dup2(w, 2)
            sys.stderr = open(2, "w", closefd=False)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                code = 98 if os.geteuid() != uid else code
            if code != 98:
                code = main(args)
            sys.stderr.flush()
        except BaseException:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the run as uid {uid} took over {timeout} s")
        time.sleep(0.05)
    with os.fdopen(r, "rb") as fh:
        err = fh.read().decode()
    return os.waitstatus_to_exitcode(status), err


@pytest.mark.parametrize("name", ["out", "s.tif", "v.mp4", "a.zarr"])
def test_a_read_only_output_folder_gives_one_clear_error(movie, tmp_path, name):
    """As root (CI), the run is a child process of uid 65534: permission bits stop it as they
    stop users; as anyone else it runs as that user."""
    trace(movie, tmp_path / "warm" / name)  # every module the run needs is imported before the fork
    base = Path(tempfile.mkdtemp(prefix="ft-ro-"))  # pytest's tmp_path is closed to other users
    try:
        os.chmod(base, 0o755)
        frames = base / "movie"
        shutil.copytree(movie, frames)
        shared = base / "shared"
        shared.mkdir()
        (shared / "old.txt").write_bytes(b"kept")
        if name == "out":
            (shared / name).mkdir()
        for path in base.rglob("*"):
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
        before = snapshot(shared)
        code, err = run_cli_as_user([str(frames), str(F), str(shared / name), "--backend", "numpy",
                                     "-q"], NOBODY if ROOT else None)
        line = one_line(err)
        assert code == 2, line
        assert line.startswith("flowtrace: error: ") and str(shared) in line
        assert "not writable" in line or "cannot write" in line or "permission denied" in line, line
        assert snapshot(shared) == before
    finally:
        for path in [base, *base.rglob("*")]:
            if path.is_dir():
                os.chmod(path, 0o755)
        shutil.rmtree(base)


def test_written_files_are_new_files_of_this_process(movie, tmp_path):
    out = tmp_path / "out"
    result = trace(movie, out)
    for path in result + [out / "flowtrace.json"]:
        st = os.lstat(path)
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1
    assert not [p for p in out.iterdir() if own_files.is_temporary(p.name)]
    assert np.all([p.stat().st_size > 0 for p in result])


@pytest.mark.parametrize("relative", [True, False])
def test_write_in_tree_writes_exclusively_and_refuses_links(tmp_path, victim, monkeypatch, relative):
    monkeypatch.setattr(own_files, "_DIR_FD", relative)  # False: the path-based fallback (Windows)
    root = tmp_path / "store"
    root.mkdir()
    own_files.write_in_tree(root, "c/0/0", b"chunk")
    assert (root / "c/0/0").read_bytes() == b"chunk"
    with pytest.raises(FileExistsError):
        own_files.write_in_tree(root, "c/0/0", b"other", exclusive=True)
    own_files.write_in_tree(root, "c/0/0", [b"new ", b"chunk"])
    assert (root / "c/0/0").read_bytes() == b"new chunk"
    assert sorted(p.name for p in (root / "c/0").iterdir()) == ["0"]  # no temporary file left
    with pytest.raises(ValueError):
        own_files.write_in_tree(root, "../escape", b"x")
    if relative:
        (root / "c/1").symlink_to(victim, target_is_directory=True)
        before = snapshot(victim)
        with pytest.raises(FlowtraceError, match=r"c/1 is a symbolic link to .*delete"):
            own_files.write_in_tree(root, "c/1/0", b"chunk")
        assert snapshot(victim) == before
