"""Where the readers meet the decoding libraries: errors and messages made one line.

Whatever a library raises while a file is read (``struct.error``,
``tifffile.TiffFileError``, ``av.error.*``, PIL's errors, ``zlib.error``,
``MemoryError``, ``OSError``...) becomes one
:class:`~flowtrace_gpu.errors.FlowtraceError` naming the file, and the frame
where one is being decoded: :func:`reading` is that boundary, entered once per
reader call (opening a file, decoding a frame). ``KeyboardInterrupt`` and
``SystemExit`` pass through.

What libraries *say* on the way (tifffile logs its complaints through the
``tifffile`` logger, Pillow through ``warnings.warn``) is collected instead of
printed: folded into the error when the read fails, else logged at INFO level
on the ``flowtrace_gpu.io`` logger (silent unless an application configures
logging). Collection is per thread: the reader thread, the probing threads and
the calling thread each keep their own messages, and a thread outside any
:func:`reading` block sees warnings as usual.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings

from ..errors import FlowtraceError

#: Loggers of the libraries whose messages are collected.
LIBRARY_LOGGERS = ("tifffile",)
#: Library messages folded into an error message, most recent last.
MESSAGES_IN_ERROR = 2
_MESSAGE_CHARS = 160

log = logging.getLogger("flowtrace_gpu.io")
_local = threading.local()
_hook_lock = threading.Lock()
_hook_users = 0
_saved_showwarning = None


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only, for one-line errors.

    A message that is no sentence (``KeyError(12)`` says ``12``) gets the
    exception's type in front.
    """
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if not any(c.isalpha() for c in line) or isinstance(exc, KeyError):
        return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return line


class _ThreadHandler(logging.Handler):
    """Collects the records a library logs on one thread."""

    def __init__(self, messages: list):
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages = messages

    def emit(self, record) -> None:
        if record.thread == self.thread:
            self.messages.append(f"{record.name}: {record.getMessage()}")


def _showwarning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` while some thread collects: that thread's go to its list."""
    stack = getattr(_local, "stack", None)
    if stack:
        stack[-1].append(f"{category.__name__}: {message}")
    elif _saved_showwarning is not None:
        _saved_showwarning(message, category, filename, lineno, file, line)


def _hook_warnings() -> None:
    global _hook_users, _saved_showwarning
    with _hook_lock:
        if warnings.showwarning is not _showwarning:
            _saved_showwarning = warnings.showwarning
            warnings.showwarning = _showwarning
        _hook_users += 1


def _unhook_warnings() -> None:
    global _hook_users
    with _hook_lock:
        _hook_users -= 1
        if _hook_users == 0 and warnings.showwarning is _showwarning:
            warnings.showwarning = _saved_showwarning


@contextlib.contextmanager
def collected_messages():
    """Collect this thread's library log records and warnings into the list yielded."""
    messages: list[str] = []
    handler = _ThreadHandler(messages)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    _hook_warnings()
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(messages)
    try:
        yield messages
    finally:
        stack.pop()
        _unhook_warnings()
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).removeHandler(handler)


def _said(messages: list[str]) -> str:
    """The last distinct library messages, one line each, for an error message."""
    lines = list(dict.fromkeys(m.strip().splitlines()[0] for m in messages if m.strip()))
    lines = [line if len(line) <= _MESSAGE_CHARS else line[:_MESSAGE_CHARS - 3] + "..."
             for line in lines[-MESSAGES_IN_ERROR:]]
    return "".join(f"; {line}" for line in lines)


@contextlib.contextmanager
def reading(subject: str, fix: str, doing: str = "read"):
    """The boundary around one read: library exceptions become one FlowtraceError.

    Parameters
    ----------
    subject : str
        What is read, naming the file (and frame): ``"frame 3 of rec.cine"``.
    fix : str
        What the user can do about a failure.
    doing : str, default 'read'
        The verb: the error reads
        ``"cannot <doing> <subject> (<reason>[; <library messages>]); <fix>"``.

    A FlowtraceError raised inside (a reader's own check) passes unchanged.
    Library messages of a successful read are logged at INFO level.
    """
    with collected_messages() as messages:
        try:
            yield
        except FlowtraceError:
            raise
        except Exception as exc:
            raise FlowtraceError(
                f"cannot {doing} {subject} ({first_line(exc)}{_said(messages)}); {fix}"
            ) from exc
    for message in messages:
        log.info("%s: %s", subject, message)
