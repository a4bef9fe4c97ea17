"""The run manifest: what an output holds, and the run that made it.

Every :func:`~flowtrace_gpu.flowtrace` output has one JSON manifest, written
before the first image and kept up to date as images complete, so that a
run stopped in any way can be resumed (``resume=True``) and batch tools can
skip finished recordings (:func:`read_manifest`, :attr:`Manifest.is_complete`).

Where: ``<folder>/flowtrace.json`` for a folder output (PNG or TIFF per
window), ``<file>.flowtrace.json`` beside a single-file output (a ``.tif``
stack, a video). It is replaced atomically (temporary file, then
``os.replace``), so a reader sees the old or the new version, never a torn
one; updates are batched (at most one per ``FLOWTRACE_MANIFEST_INTERVAL``
seconds while images complete, and one when the run ends or stops), not
synced to disk per image.

Format (``"manifest": 1``), one JSON object:

``package_version``
    flowtrace_gpu version that wrote the output.
``output``
    ``{"path": absolute path, "kind": "png" | "tiff" | "tiff-stack" | "video"}``.
``source``
    The recording's identity: ``{"path": absolute path, "size": bytes of
    every file read, "mtime_ns": the latest modification time among them,
    "n_frames": frames after frames_to_skip, "files": files read, "digest":
    SHA-1 of every file's name, size and mtime}``.
``frames_to_merge``
    F.
``options``
    Every option that shapes the images (``windows``, ``normalize``, ...:
    the fields of ``TraceOptions``), plus ``frames_to_skip`` and, for a
    video, ``fps``.
``n_images``
    Images the run writes.
``global_peak``
    With ``normalize='global'``: the brightest value over all images, which
    every image is scaled by (exact: a JSON float round-trips); else null.
``complete``
    The images that are complete, as sorted, disjoint half-open index
    ranges ``[[start, stop], ...]``: ``[[0, 40], [42, 44]]`` is images
    0-39, 42 and 43. A single-file output is complete or not at all.
``created``, ``updated``
    ISO 8601 times.

Image ``i`` listed complete is a whole file at its final name; images not
listed may exist (written after the last update) but are rewritten on resume.

>>> m = Manifest(output={"path": "/o", "kind": "png"}, source={}, frames_to_merge=3,
...              options={}, n_images=5, package_version="0", complete=[[0, 2], [3, 4]])
>>> m.n_complete, m.is_complete, sorted(m.complete_indices())
(3, False, [0, 1, 3])
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..errors import FlowtraceError
from ..io.own_files import create_temp, describe_entry, write_atomically
from ..io.suffixes import (
    ARRAY_SUFFIXES,
    BESIDE_LOCK,
    BESIDE_MANIFEST,
    FOLDER_LOCK,
    FOLDER_MANIFEST,
    RESERVE,
    SINGLE_FILE_SUFFIXES,
)

#: Version of the manifest format.
FORMAT_VERSION = 1
#: Least disk space set aside for the manifest's last update (see ManifestRecorder.reserve).
RESERVE_BYTES = 64 * 1024


def is_folder_output(out) -> bool:
    """Whether ``out`` names a folder output (an existing folder, or no single-file suffix)."""
    p = Path(out)
    if p.suffix.lower() in ARRAY_SUFFIXES:
        return False
    return p.is_dir() or p.suffix.lower() not in SINGLE_FILE_SUFFIXES


def manifest_path(out) -> Path:
    """Where the manifest of output ``out`` lives."""
    p = Path(out)
    return p / FOLDER_MANIFEST if is_folder_output(p) else p.with_name(p.name + BESIDE_MANIFEST)


def lock_path(out) -> Path:
    """Where the lock of output ``out`` lives."""
    p = Path(out)
    return p / FOLDER_LOCK if is_folder_output(p) else p.with_name(p.name + BESIDE_LOCK)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def to_ranges(indices) -> list[list[int]]:
    """Sorted half-open ranges covering ``indices``.

    >>> to_ranges([5, 0, 1, 2, 7, 6])
    [[0, 3], [5, 8]]
    """
    ranges: list[list[int]] = []
    for i in sorted(set(indices)):
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        else:
            ranges.append([i, i + 1])
    return ranges


@dataclass
class Manifest:
    """One output's record (see the module docstring for the JSON format)."""

    output: dict
    source: dict
    frames_to_merge: int
    options: dict
    n_images: int
    package_version: str
    global_peak: float | None = None
    complete: list = field(default_factory=list)
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)

    #: Fields that say what the images are; resume needs them all equal.
    IDENTITY = ("package_version", "output", "source", "frames_to_merge", "options", "n_images")

    @property
    def n_complete(self) -> int:
        """How many images are complete."""
        return sum(stop - start for start, stop in self.complete)

    @property
    def is_complete(self) -> bool:
        """Whether every image of the output is complete."""
        return self.n_complete == self.n_images

    def complete_indices(self):
        """The indices of the complete images, in order."""
        for start, stop in self.complete:
            yield from range(start, stop)

    def to_dict(self) -> dict:
        data = {"manifest": FORMAT_VERSION}
        data.update(dataclasses.asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        if not isinstance(data, dict) or data.get("manifest") != FORMAT_VERSION:
            raise ValueError(f"not a version-{FORMAT_VERSION} flowtrace manifest")
        names = {f.name for f in dataclasses.fields(cls)}
        manifest = cls(**{k: v for k, v in data.items() if k in names})
        manifest.complete = [[int(a), int(b)] for a, b in manifest.complete]
        return manifest

    def write(self, path) -> None:
        """Replace the file ``path`` with this manifest, atomically."""
        self.updated = _now()
        data = json.dumps(self.to_dict(), indent=1, allow_nan=False).encode()
        write_atomically(Path(path), data)

    def differences(self, other: Manifest) -> list[str]:
        """What makes ``other``'s images differ from this one's, in words (empty if nothing).

        Compares :data:`IDENTITY`; the completion state, the times and where
        the output is (a folder may be moved, its manifest with it) do not count.
        """
        mine, theirs = _plain(self), _plain(other)
        for data in (mine, theirs):
            data["output"].pop("path", None)
            # An option a manifest does not name had its default (a manifest written
            # before the option existed).
            data["options"] = {**_option_defaults(), **data["options"]}
        found = []
        for key in self.IDENTITY:
            a, b = mine[key], theirs[key]
            if isinstance(a, dict) and isinstance(b, dict):
                for sub in sorted(set(a) | set(b)):
                    if a.get(sub) != b.get(sub):
                        found.append(f"{_label(key, sub)} {a.get(sub)!r} -> {b.get(sub)!r}")
            elif a != b:
                found.append(f"{_label(key)} {a!r} -> {b!r}")
        return found


def _option_defaults() -> dict:
    """The default of every recorded run option, as JSON holds it."""
    from ..options import RunOptions, recorded_options

    return recorded_options(RunOptions())


def _plain(manifest: Manifest) -> dict:
    """The manifest as JSON would give it back (tuples as lists, ...), to compare."""
    return json.loads(json.dumps(manifest.to_dict()))


_LABELS = {"package_version": "flowtrace_gpu version", "n_images": "number of images",
           "output": "output", "source": "source", "options": "option"}


def _label(key: str, sub: str | None = None) -> str:
    if sub is None:
        return _LABELS.get(key, key)
    if key == "source" and sub == "digest":
        return "source files (one was renamed, replaced or modified)"
    if key == "options":
        return sub
    return f"{_LABELS.get(key, key)} {sub}"


def read_manifest(out) -> Manifest | None:
    """The manifest of output ``out`` (a folder or a single file), or None if it has none.

    Parameters
    ----------
    out : path-like
        The output as given to :func:`~flowtrace_gpu.flowtrace` (``'same'``
        resolved to its folder).

    Raises
    ------
    FlowtraceError
        A manifest exists but cannot be read.
    """
    path = manifest_path(out)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_a_manifest(path) from None
        raise FlowtraceError(f"cannot read the manifest {path} ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise _not_a_manifest(path)
        raw = fh.read()
    try:
        return Manifest.from_dict(json.loads(raw))
    except (ValueError, TypeError, KeyError) as exc:
        raise FlowtraceError(
            f"the manifest {path} is unreadable ({exc}); run again without resume to start "
            "that output over") from None


def _not_a_manifest(path: Path) -> FlowtraceError:
    return FlowtraceError(
        f"the manifest {path} is {describe_entry(path)}, which flowtrace neither follows nor "
        f"reads; delete {path} and run again")


def source_identity(location, files, n_frames: int) -> dict:
    """The ``source`` entry of a manifest: what a resumed run checks is unchanged.

    Parameters
    ----------
    location : path-like
        The recording as given (a folder or a file).
    files : sequence of path-like
        Every file the source reads.
    n_frames : int
        Frames after frames_to_skip.
    """
    digest = hashlib.sha1()
    size, latest = 0, 0
    for f in files:
        st = os.stat(f)
        size += st.st_size
        latest = max(latest, st.st_mtime_ns)
        digest.update(f"{Path(f).name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(Path(location).resolve()), "size": size, "mtime_ns": latest,
            "n_frames": n_frames, "files": len(files), "digest": digest.hexdigest()}


class ManifestRecorder:
    """Keeps an output's manifest on disk up to date as images complete.

    Thread-safe: writer threads call :meth:`mark` after each image is in
    place. The file is rewritten at most once per ``interval`` seconds
    (``FLOWTRACE_MANIFEST_INTERVAL``) during a run, and by :meth:`flush`.

    Parameters
    ----------
    manifest : Manifest
        What the output holds now; updated in place.
    path : pathlib.Path
        The manifest file.
    interval : float, optional
        Seconds between updates; default the setting.
    """

    def __init__(self, manifest: Manifest, path: Path, interval: float | None = None):
        self.manifest = manifest
        self.path = Path(path)
        self.interval = float(config.get("manifest_interval_s") if interval is None else interval)
        self._done = set(manifest.complete_indices())
        self._lock = threading.Lock()
        self._last = float("-inf")
        #: Images the manifest on disk lists complete (what a resume keeps).
        self.n_recorded = manifest.n_complete
        self._reserve: Path | None = None

    @property
    def n_complete(self) -> int:
        """Images complete in this run's memory (some may not be on disk's record yet)."""
        return len(self._done)

    def is_done(self, index: int) -> bool:
        return index in self._done

    def mark(self, index: int) -> None:
        """Record image ``index`` as complete (its file is in place)."""
        with self._lock:
            self._done.add(index)
            if time.monotonic() - self._last >= self.interval:
                self._write()

    def mark_all(self) -> None:
        """Record every image as complete (a single file was moved into place)."""
        with self._lock:
            self._done = set(range(self.manifest.n_images))
            self._write()

    def set_peak(self, peak: float) -> None:
        """Record the global-normalization peak, before any image is written with it."""
        with self._lock:
            self.manifest.global_peak = float(peak)
            self._write()

    def flush(self) -> None:
        """Write the manifest now."""
        with self._lock:
            self._write()

    def reserve(self) -> None:
        """Set disk space aside for the manifest's last update.

        On a disk that fills up, the images are what fill it; the manifest
        must still record them, so a spare file (named like a temporary, so
        a killed run's is removed as debris) is given up when an update
        finds no space.
        """
        try:
            fd, spare = create_temp(self.path.with_name(self.path.name + RESERVE))
        except OSError:
            return  # no room even for its name: nothing to give up later
        size = max(RESERVE_BYTES, 4 * len(json.dumps(self.manifest.to_dict())))
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(bytes(size))
        except OSError:
            spare.unlink(missing_ok=True)  # no room even for that: nothing to give up later
            return
        self._reserve = spare

    def release(self) -> None:
        """Remove the reserve (when the run ends, however it ends)."""
        spare, self._reserve = self._reserve, None
        if spare is not None:
            spare.unlink(missing_ok=True)

    def _write(self) -> None:
        self.manifest.complete = to_ranges(self._done)
        try:
            self.manifest.write(self.path)
        except OSError:
            if self._reserve is None:
                raise
            self.release()  # the disk is full: the reserve makes room for this one update
            self.manifest.write(self.path)
        self._last = time.monotonic()
        self.n_recorded = len(self._done)
