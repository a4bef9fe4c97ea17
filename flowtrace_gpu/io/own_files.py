"""The files flowtrace itself writes: how they are named, created and recognized.

Five kinds, each recognizable by name so that no run ever reads one as a frame:

- **images** of a folder output: ``<frame name>_streamlines_frames<F>.png``
  (or ``.tif``), see :func:`output_names`;
- **single-file outputs** (a ``.tif`` stack, a video) of any name: each has
  its manifest beside it, ``<file>.flowtrace.json``
  (:mod:`flowtrace_gpu.runs.manifest`), which marks the file as an output;
- the **time legend** of an output (``legend.png`` in a folder output,
  ``<file>.legend.png`` beside a file), beside that output's manifest;
- the **manifest and lock** of an output (``flowtrace.json`` /
  ``flowtrace.lock`` in a folder output, ``<file>.flowtrace.json`` /
  ``<file>.flowtrace.lock`` beside a file; names in
  :mod:`flowtrace_gpu.io.suffixes`), never image files;
- **temporary files**: ``.<final name>.ft-<host>-<pid>-<random>.part`` plus,
  for files whose encoder picks the container by suffix, the final suffix
  (``.x.mp4.ft-1a2b3c4d-4242-9f86d081884c7d65.part.mp4``). ``host`` is a hash
  of the host name, ``pid`` the writing process (the run's stale-file
  cleanup removes those of processes that are gone), ``random`` 16 hex
  digits from :mod:`secrets`.

Every file is written under a temporary name that this process has just
created (:func:`create_temp`: ``O_CREAT | O_EXCL | O_NOFOLLOW``, as
:func:`tempfile.mkstemp` does), then renamed into place. A name that exists
already, a symbolic link planted there included, is never opened for
writing: another name is drawn. ``os.replace`` replaces a link at the final
name by the file; it never writes through it. So a link planted in a shared
output folder cannot make a run write into another file.

Temporary names of earlier versions (``.x.png.<pid>.part``,
``.x.<pid>.part.tif``, a counter in place of the random part) are
recognized too.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import stat
from pathlib import Path

from ..errors import FlowtraceError
from .suffixes import BESIDE_LEGEND, BESIDE_MANIFEST, FOLDER_MANIFEST, LEGEND_NAME

#: Images of a folder output (also the TIFFs of ``format='tiff'``).
OUTPUT_NAME = re.compile(r"_streamlines_frames\d+\.(png|tiff?)$", re.IGNORECASE)

_TEMP = re.compile(
    r"^\.(?P<target>.+)\.ft-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-z]+\.part(\.\w+)?$")
_LEGACY_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.part(\.\w+)?$")
#: Random bytes in a temporary name (shown as twice as many hex digits).
_RANDOM_BYTES = 8
#: Names drawn before giving up: each is taken only by a file already there.
_TRIES = 100

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_EXCLUSIVE = os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | getattr(os, "O_BINARY", 0)
_SUBFOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_DIR_FD = {os.open, os.mkdir, os.rename, os.link, os.unlink} <= os.supports_dir_fd


def this_host() -> str:
    """The host name recorded in locks and, hashed, in temporary names."""
    return socket.gethostname()


def host_tag(host: str | None = None) -> str:
    """Eight hex digits naming a host in temporary names (host names may hold dots)."""
    return hashlib.sha1((host or this_host()).encode()).hexdigest()[:8]


def temp_name(name: str, keep_suffix: bool = False) -> str:
    """A fresh temporary name for the final name ``name`` (random each call; not created).

    >>> temp_name('x.png').startswith('.x.png.ft-')
    True
    >>> temp_name('x.png') != temp_name('x.png')
    True
    """
    tail = Path(name).suffix if keep_suffix else ""
    return (f".{name}.ft-{host_tag()}-{os.getpid()}-{secrets.token_hex(_RANDOM_BYTES)}"
            f".part{tail}")


def temp_path(path, keep_suffix: bool = False) -> Path:
    """A fresh temporary name beside ``path``; write only through :func:`create_temp`.

    >>> temp_path('out/v.mp4', keep_suffix=True).suffix
    '.mp4'
    """
    path = Path(path)
    return path.with_name(temp_name(path.name, keep_suffix))


def create_temp(path, keep_suffix: bool = False, *, dir_fd: int | None = None) -> tuple[int, Path]:
    """Create a new temporary file for ``path``, exclusively; return its descriptor and name.

    The file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a name
    with a random part, so it is a new file of this process: never an
    existing file, never the target of a link. A name that exists is
    skipped, not reused.

    Parameters
    ----------
    path : path-like
        The final file (its folder holds the temporary one).
    keep_suffix : bool
        End the temporary name with ``path``'s suffix (encoders that pick
        the container from it).
    dir_fd : int, optional
        ``path`` is a bare name in the folder open as ``dir_fd``.

    Returns
    -------
    fd : int
        Open for reading and writing; the caller closes it.
    tmp : pathlib.Path
        The temporary file (relative to ``dir_fd`` where given).
    """
    path = Path(path)
    for _ in range(_TRIES):
        tmp = temp_path(path, keep_suffix)
        try:
            fd = os.open(tmp if dir_fd is None else tmp.name, _EXCLUSIVE, 0o666, dir_fd=dir_fd)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path}", str(path))


def write_atomically(path, data) -> None:
    """Write ``data`` (bytes, or a list of buffers) to ``path`` via a new temporary file.

    The temporary file is created by :func:`create_temp` and renamed over
    ``path``: a reader sees the old file or the new one, and a link at
    ``path`` is replaced, not written through.
    """
    path = Path(path)
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write(fh, data)
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def write_in_tree(root, key: str, data, exclusive: bool = False) -> None:
    """Write ``data`` to ``root/key`` (``key`` a ``/``-separated path), following no link below ``root``.

    Folders on the way are created; each is opened with ``O_NOFOLLOW``
    relative to the one above, so a link planted anywhere below ``root``
    is refused rather than followed. The file is written as by
    :func:`write_atomically`, in its folder.

    Parameters
    ----------
    exclusive : bool
        Fail with FileExistsError if ``root/key`` exists.

    Raises
    ------
    FlowtraceError
        A link, or a file where a folder belongs, is in the way.
    """
    parts = [p for p in key.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"not a key inside the store: {key!r}")
    if not _DIR_FD:  # e.g. Windows: no folder-relative calls (and no links to speak of)
        path = Path(root, *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        if exclusive and path.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(path))
        write_atomically(path, data)
        return
    folder = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                os.mkdir(part, 0o777, dir_fd=folder)
            except FileExistsError:
                pass
            try:
                inner = os.open(part, _SUBFOLDER, dir_fd=folder)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise planted(Path(root, *parts[: i + 1]), "a folder") from None
                raise
            os.close(folder)
            folder = inner
        name = parts[-1]
        fd, tmp = create_temp(name, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                _write(fh, data)
            if exclusive:
                os.link(tmp.name, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
                os.unlink(tmp.name, dir_fd=folder)
            else:
                os.replace(tmp.name, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            try:
                os.unlink(tmp.name, dir_fd=folder)
            except OSError:
                pass
            raise
    finally:
        os.close(folder)


def planted(path, expected: str) -> FlowtraceError:
    """The refusal of an entry that is not what a run writes there (a link, a stranger's file)."""
    return FlowtraceError(
        f"{path} is {describe_entry(path)}, where flowtrace writes {expected}; it writes "
        f"through no link and into no file it did not create: delete {path} and run again")


def describe_entry(path, st: os.stat_result | None = None) -> str:
    """What is at ``path``, not following links: ``'a file'`` if a run of this user may write it.

    Else ``'a symbolic link to /x'``, ``'a folder'``, ``'a file of user bob
    (uid 1001)'``, ``'a file with 2 hard links'``, ... ``st`` is the entry's
    status where already known (``os.fstat`` of an open file).
    """
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            return "missing"
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device)"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"a file of {_user(st.st_uid)}"
    if st.st_nlink != 1:
        return f"a file with {st.st_nlink} hard links"
    return "a file"


def _user(uid: int) -> str:
    """``'user alice (uid 1001)'``, or the uid alone where it has no name."""
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _write(fh, data) -> None:
    if isinstance(data, list):
        fh.writelines(data)
    else:
        fh.write(data)


def _discard(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of a flowtrace run (of any version)."""
    return bool(_TEMP.match(name) or _LEGACY_TEMP.match(name))


def parse_temporary(name: str) -> dict | None:
    """``{'target', 'host', 'pid'}`` of a temporary name (``host`` None for old names), or None.

    >>> parse_temporary('.x.png.ft-1a2b3c4d-42-9f86d081884c7d65.part')
    {'target': 'x.png', 'host': '1a2b3c4d', 'pid': 42}
    """
    match = _TEMP.match(name) or _LEGACY_TEMP.match(name)
    if match is None:
        return None
    return {"target": match["target"], "host": match.groupdict().get("host"),
            "pid": int(match["pid"])}


def is_regular_file(path) -> bool:
    """Whether ``path`` is a regular file itself (not a link, folder, pipe ...)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def own_file_names(folder) -> set[str]:
    """Names in ``folder`` that flowtrace wrote: outputs, their manifests and locks, temporaries."""
    try:
        names = os.listdir(folder)
    except OSError:
        return set()
    own = set()
    for name in names:
        if OUTPUT_NAME.search(name) or is_temporary(name):
            own.add(name)
        elif name.endswith(BESIDE_MANIFEST):
            own.add(name[: -len(BESIDE_MANIFEST)])  # the single-file output it describes
    # A legend counts as ours beside the output it belongs to (recognized by its manifest).
    if LEGEND_NAME in names and FOLDER_MANIFEST in names:
        own.add(LEGEND_NAME)
    own.update(name for name in names if name.endswith(BESIDE_LEGEND)
               and name[: -len(BESIDE_LEGEND)] + BESIDE_MANIFEST in names)
    return own


def without_own_files(files, folder) -> list[Path]:
    """``files`` of ``folder`` less those flowtrace wrote (see :func:`own_file_names`)."""
    own = own_file_names(folder)
    return [f for f in files if f.name not in own]


def output_names(stems, suffix: str, extensions=None) -> list[str]:
    """One distinct file stem per output: ``<stem><suffix>``, collisions made distinct.

    Two frames may give one name (``f000.tif`` and ``f000.png``, or names
    differing only in case, which one file on macOS and Windows): each
    colliding name gets its frame's extension (``f000_tif``), and, if that
    is still not enough, its index. The rule depends only on the names, so
    a resumed run names its images as the first run did.

    Parameters
    ----------
    stems : sequence of str
        The frames' names without extension, one per output.
    suffix : str
        Appended to every name, e.g. ``'_streamlines_frames10'``.
    extensions : sequence of str, optional
        The frames' file extensions (``'.tif'``), where known.

    >>> output_names(['f000', 'f000', 'f001'], '_s', ['.tif', '.png', '.tif'])
    ['f000_tif_s', 'f000_png_s', 'f001_s']
    >>> output_names(['A', 'a'], '_s')
    ['A_0_s', 'a_1_s']
    """
    stems = list(stems)
    names = list(stems)
    for attempt in ("extension", "index"):
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            groups.setdefault(name.casefold(), []).append(i)
        clashes = [i for group in groups.values() if len(group) > 1 for i in group]
        if not clashes:
            break
        for i in clashes:
            if attempt == "extension" and extensions is not None:
                names[i] = f"{stems[i]}_{extensions[i].lstrip('.').lower()}"
            else:
                names[i] = f"{names[i]}_{i}"
    if len({name.casefold() for name in names}) < len(names):
        raise FlowtraceError(
            "the frames' names give clashing output names even with their extensions and "
            "indices added; rename the frames so that their names differ")
    return [name + suffix for name in names]
