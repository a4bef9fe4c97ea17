"""One run per output: a lock file holding the PID and host of the run that writes there.

The lock of a folder output is ``<folder>/flowtrace.lock``; of a single-file
output ``<file>.flowtrace.lock`` beside it. Where the filesystem supports
``flock`` the file is also locked by the kernel, which releases it when the
process dies however it dies, so a lock left by a killed run is known stale
at once; elsewhere a lock is stale when its PID is not running on this host.
A lock written on another host whose process cannot be checked is honoured:
the error says which file to delete if that run is gone.

The lock is opened with ``O_NOFOLLOW`` and must be a regular file of the
running user with one link: a symbolic link, a hard link of another file
or another user's file in its place is refused (the error says what was
found and what to delete), never truncated or written.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with OutputLock(folder / "flowtrace.lock"):
...     OutputLock(folder / "flowtrace.lock").acquire()
Traceback (most recent call last):
...
flowtrace_gpu.errors.FlowtraceError: ...
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from pathlib import Path

from ..errors import FlowtraceError
from ..io.own_files import describe_entry, this_host

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger("flowtrace_gpu")


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), where /proc tells; else None.

    Recorded with a PID so that a PID reused by another process after a
    reboot or container restart is not taken for the run that wrote it.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` of this host runs (and, if known, started at ``started``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    except OSError:
        return False
    if started is not None:
        now = process_start(pid)
        if now is not None and now != started:
            return False  # the PID was reused
    return True


class OutputLock:
    """The lock file ``path``, held from :meth:`acquire` to :meth:`release`.

    Parameters
    ----------
    path : path-like
        The lock file.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock, taking over a stale one with a note.

        Raises
        ------
        FlowtraceError
            Another live run holds it (the message names its PID and host), or
            a run on another host whose process cannot be checked from here,
            or something other than this user's lock file is in its place.
        """
        while True:
            fd = self._open()
            state, holder = _UNSUPPORTED, {}
            try:
                state = _flock(fd)
                # The holder may have removed the file between our open and
                # our lock: then we locked a dead inode and must retry.
                if state == _LOCKED and not _same_file(fd, self.path):
                    os.close(fd)
                    continue
                holder = _read_holder(fd)
                if state == _BUSY:
                    for _ in range(20):  # its holder may be writing its PID right now
                        if holder:
                            break
                        time.sleep(0.01)
                        holder = _read_holder(fd)
                    raise self._busy(holder)
                if holder:
                    if holder.get("host") != this_host() and not holder.get("torn"):
                        raise self._busy(holder, foreign=True)
                    # Same host: a kernel lock we got means its holder is gone;
                    # without one, its PID tells.
                    if state == _UNSUPPORTED and not holder.get("torn") and _holder_alive(holder):
                        raise self._busy(holder)
                    log.warning("took over the lock %s left by process %s, which is gone",
                                self.path, holder.get("pid", "?"))
                _write_holder(fd)
            except BaseException:
                if state == _LOCKED and not holder:
                    _unlink(self.path)  # ours, and empty: leave no trace
                os.close(fd)
                raise
            self._fd = fd
            return self

    def _open(self) -> int:
        """Open or create the lock file, refusing anything but this user's regular file."""
        try:
            fd = os.open(self.path, _OPEN, 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ENXIO):
                found = describe_entry(self.path)
                if found not in ("a file", "missing"):
                    raise self._refuse(found) from None
            raise
        found = describe_entry(self.path, os.fstat(fd))
        if found != "a file":
            os.close(fd)
            raise self._refuse(found)
        return fd

    def _refuse(self, found: str) -> FlowtraceError:
        return FlowtraceError(
            f"the lock {self.path} is {found}, not a lock file of this user's flowtrace, "
            f"so it is neither read nor written; if no flowtrace run writes this output, "
            f"delete {self.path} and run again")

    def _busy(self, holder: dict, foreign: bool = False) -> FlowtraceError:
        who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
        if foreign:
            return FlowtraceError(
                f"output is locked by flowtrace {who} ({self.path}), which cannot be checked "
                f"from {this_host()}; if that run is gone, delete {self.path} and run again")
        return FlowtraceError(
            f"output is in use by flowtrace {who} (lock {self.path}); wait for it to "
            "finish or stop it, or write elsewhere (one run at a time per output folder or "
            "file: give concurrent runs their own)")

    def release(self) -> None:
        """Remove the lock file and let go of it."""
        if self._fd is None:
            return
        _unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_LOCKED, _BUSY, _UNSUPPORTED = "locked", "busy", "unsupported"
#: Never through a link; a pipe planted as the lock must not block the open.
_OPEN = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
         | getattr(os, "O_CLOEXEC", 0))


def _flock(fd: int) -> str:
    """Lock ``fd`` exclusively: locked, busy (another process holds it) or unsupported."""
    if fcntl is None:
        return _UNSUPPORTED
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return _BUSY
        return _UNSUPPORTED  # e.g. ENOLCK: the PID decides
    return _LOCKED


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the folder went away: nothing left to guard


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` (not followed) is still the file open as ``fd``."""
    try:
        st, mine = os.lstat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    if not raw.strip():
        return {}
    try:
        holder = json.loads(raw)
    except ValueError:
        return {"pid": "?", "host": this_host(), "torn": True}  # cut off by a kill: stale
    return holder if isinstance(holder, dict) else {}


def _holder_alive(holder: dict) -> bool:
    pid = holder.get("pid")
    return isinstance(pid, int) and process_alive(pid, holder.get("started"))


def _write_holder(fd: int) -> None:
    holder = {"pid": os.getpid(), "host": this_host(), "started": process_start(os.getpid()),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    data = json.dumps(holder).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
