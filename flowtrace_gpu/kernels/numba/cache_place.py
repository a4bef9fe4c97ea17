"""Where Numba keeps the compiled kernels: a writable folder, found before any kernel is defined.

Every kernel is ``@njit(cache=True)``, and Numba looks for a cache folder
when the decorator runs, at import: ``NUMBA_CACHE_DIR`` if set, else the
``__pycache__`` beside the source, else the user's cache folder
(``~/.cache/numba``). When none is writable -- the package installed
read-only for a whole lab and run by a user whose home is not writable --
Numba refuses to define the kernels at all ("cannot cache function ...: no
locator available"). :func:`place_cache`, run by this package's
``__init__`` before any kernel module is imported, checks the same places
in the same order and, when none is writable, points Numba at a private
temporary folder, with one warning. The compiled kernels then live as long
as that folder (usually until the machine restarts).
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

#: (kind, folder) of the last :func:`place_cache`: kind is 'NUMBA_CACHE_DIR',
#: 'package', 'user', 'temp' or 'none'.
PLACE: tuple[str, str | None] = ("none", None)


def _writable(path: str) -> bool:
    """Whether ``path`` exists or can be made, and takes a file (Numba's own test)."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def user_cache_dir() -> str:
    """Numba's user-wide cache folder (``~/.cache/numba`` on Linux)."""
    from numba.misc.appdirs import AppDirs

    return AppDirs(appname="numba", appauthor=False).user_cache_dir


def _private_temp() -> str | None:
    """A temporary folder only this user can write, the same in every process of the user.

    Another user could have made the fixed name first: Numba's cache holds
    code that is run, so the folder must be ours and closed to others, else
    a fresh folder for this process is taken.
    """
    uid = os.getuid() if hasattr(os, "getuid") else None
    path = os.path.join(tempfile.gettempdir(), f"flowtrace-numba-cache-{uid if uid is not None else 'user'}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
        if (uid is None or st.st_uid == uid) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) \
                and _writable(path):
            return path
    except OSError:
        pass
    try:
        return tempfile.mkdtemp(prefix="flowtrace-numba-cache-")
    except OSError:
        return None


def place_cache() -> tuple[str, str | None]:
    """Make sure Numba has a writable cache folder; return ``(kind, folder)``.

    The order is Numba's: ``NUMBA_CACHE_DIR``, the package's ``__pycache__``,
    the user cache folder; then a private temporary folder (set as Numba's
    ``CACHE_DIR``, with one warning on the ``flowtrace_gpu`` logger). Kind
    'none' means not even that could be made: defining a kernel then fails,
    and the Numba backend says so.
    """
    global PLACE
    from numba.core import config

    if config.CACHE_DIR and _writable(config.CACHE_DIR):
        PLACE = ("NUMBA_CACHE_DIR", config.CACHE_DIR)
        return PLACE
    package = str(Path(__file__).resolve().parent / "__pycache__")
    if _writable(package):
        PLACE = ("package", package)
        return PLACE
    user = user_cache_dir()
    if _writable(user):
        PLACE = ("user", user)
        return PLACE
    temp = _private_temp()
    if temp is None:
        PLACE = ("none", None)
        return PLACE
    config.CACHE_DIR = temp
    PLACE = ("temp", temp)
    logging.getLogger("flowtrace_gpu").warning(
        "compiled CPU kernels are cached in %s (the package folder %s and the user cache "
        "folder %s are not writable): they compile again after it is cleared; set "
        "NUMBA_CACHE_DIR to a lasting writable folder to keep them", temp,
        os.path.dirname(package), user)
    return PLACE
