"""Temporary files of dead runs: found by name, removed without following links.

A run writes every file under a temporary name
(:mod:`flowtrace_gpu.io.own_files`) that carries the writing host and
process. Before it writes, a run removes the temporaries left in its output
by processes that are gone (killed, or their machine restarted): those
files can never be finished.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from ..io.own_files import host_tag, parse_temporary
from .lock import process_alive

#: A temporary file of another host is removed when untouched this long: a
#: live writer touches its file at least once per image.
FOREIGN_TEMP_AGE_S = 24 * 3600


def remove_stale(folder, target: str | None = None) -> list[Path]:
    """Remove the temporary files of dead runs in ``folder``; return those removed.

    A temporary file is stale when its process is not running on this host,
    or, written on another host, when it is untouched for
    :data:`FOREIGN_TEMP_AGE_S`. With ``target``, only temporaries of that
    final name are considered (a single-file output shares its folder).
    Only regular files named as a run names its temporaries are removed:
    a link, a folder or any other name is left alone, and no link is
    followed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    here = host_tag()
    for entry in entries:
        found = parse_temporary(entry.name)
        if found is None or (target is not None and found["target"] != target):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # a run creates regular files only: not ours
        if found["host"] in (None, here):
            stale = not process_alive(found["pid"])
        else:
            stale = time.time() - st.st_mtime > FOREIGN_TEMP_AGE_S
        if stale:
            try:
                os.unlink(entry.path)
            except OSError:
                continue  # gone already, or not ours to remove
            removed.append(Path(entry.path))
    return removed
