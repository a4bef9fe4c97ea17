"""The files flowtrace itself writes: how they are named and how a run recognizes them.

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
  ``<file>.flowtrace.lock`` beside a file), never image files;
- **temporary files**: ``.<final name>.ft-<host>-<pid>-<n>.part`` plus, for
  files whose encoder picks the container by suffix, the final suffix
  (``.x.mp4.ft-1a2b3c4d-4242-0.part.mp4``). ``host`` is a hash of the host
  name, ``pid`` the writing process: :func:`remove_stale` removes those of
  processes that are gone.

Temporary names of earlier versions (``.x.png.<pid>.part``,
``.x.<pid>.part.tif``) are recognized too.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import time
from pathlib import Path

from ..errors import FlowtraceError
from ..runs.lock import process_alive, this_host
from ..runs.manifest import BESIDE_MANIFEST, FOLDER_MANIFEST

#: The time legend of a folder output, and the suffix of one beside a file output.
LEGEND_NAME = "legend.png"
BESIDE_LEGEND = ".legend.png"

#: Images of a folder output (also the TIFFs of ``format='tiff'``).
OUTPUT_NAME = re.compile(r"_streamlines_frames\d+\.(png|tiff?)$", re.IGNORECASE)

_TEMP = re.compile(r"^\.(?P<target>.+)\.ft-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-\d+\.part(\.\w+)?$")
_LEGACY_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.part(\.\w+)?$")
#: A temporary file of another host is removed when untouched this long: a
#: live writer touches its file at least once per image.
FOREIGN_TEMP_AGE_S = 24 * 3600

_counter = itertools.count()


def host_tag(host: str | None = None) -> str:
    """Eight hex digits naming a host in temporary names (host names may hold dots)."""
    return hashlib.sha1((host or this_host()).encode()).hexdigest()[:8]


def temp_path(path, keep_suffix: bool = False) -> Path:
    """The temporary name under which ``path`` is written before it is renamed into place.

    >>> temp_path('out/x.png').name.startswith('.x.png.ft-')
    True
    >>> temp_path('out/v.mp4', keep_suffix=True).suffix
    '.mp4'
    """
    path = Path(path)
    tail = path.suffix if keep_suffix else ""
    return path.with_name(
        f".{path.name}.ft-{host_tag()}-{os.getpid()}-{next(_counter)}.part{tail}")


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of a flowtrace run (of any version)."""
    return bool(_TEMP.match(name) or _LEGACY_TEMP.match(name))


def remove_stale(folder, target: str | None = None) -> list[Path]:
    """Remove the temporary files of dead runs in ``folder``; return those removed.

    A temporary file is stale when its process is not running on this host,
    or, written on another host, when it is untouched for
    :data:`FOREIGN_TEMP_AGE_S`. With ``target``, only temporaries of that
    final name are considered (a single-file output shares its folder).
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    here = host_tag()
    for entry in entries:
        match = _TEMP.match(entry.name) or _LEGACY_TEMP.match(entry.name)
        if match is None or (target is not None and match["target"] != target):
            continue
        host = match.groupdict().get("host", here)
        if host == here:
            stale = not process_alive(int(match["pid"]))
        else:
            try:
                stale = time.time() - entry.stat().st_mtime > FOREIGN_TEMP_AGE_S
            except OSError:
                continue
        if stale:
            try:
                os.unlink(entry.path)
            except OSError:
                continue  # gone already, or not ours to remove
            removed.append(Path(entry.path))
    return removed


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
