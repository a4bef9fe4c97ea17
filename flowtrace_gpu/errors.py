"""The exceptions users see.

Two moments, two promises:

- :class:`FlowtraceError` before a run starts (bad options, a missing or
  unreadable input, a frame header that does not match, an output that would
  harm the input): nothing has been written.
- :class:`IncompleteRunError` (a ``FlowtraceError``) for what only shows
  while frames are read and images written (a frame whose data is cut short,
  a full disk): the images finished so far are complete files, the output's
  manifest says which, and ``resume=True`` (``--resume``) finishes the rest
  once the cause is fixed. :class:`RunInterrupted` (a ``KeyboardInterrupt``)
  is the same for SIGINT and SIGTERM.
"""

from __future__ import annotations

import importlib


class FlowtraceError(ValueError):
    """Bad input or an unusable setup, explained.

    Every message names the file or parameter at fault, what was expected,
    what was received and how to fix it. Raised as a run starts, it means
    nothing was written; raised later it is an :class:`IncompleteRunError`.
    """


class IncompleteRunError(FlowtraceError):
    """A run stopped part-way: a frame could not be read, or an image not written.

    The message names the file (and frame index) at fault, the cause, how many
    images are complete and how to continue. Images already written are
    complete files; no partial file is left.

    Attributes
    ----------
    completed : int
        Images of the output that are complete (kept from an earlier run included).
    total : int or None
        Images the run would write.
    output : pathlib.Path or None
        The output folder or file.
    """

    def __init__(self, message: str, *, completed: int = 0, total: int | None = None,
                 output=None):
        super().__init__(message)
        self.completed = completed
        self.total = total
        self.output = output


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a :func:`~flowtrace_gpu.flowtrace` run, after cleanup.

    A ``KeyboardInterrupt``, so ``except KeyboardInterrupt`` in a script sees
    Ctrl-C as before. In-flight images were finished or removed and the
    manifest records every complete image before this is raised.

    Attributes
    ----------
    signum : int
        The signal (``signal.SIGINT`` or ``signal.SIGTERM``).
    completed, total, output
        As for :class:`IncompleteRunError`.
    resumable : bool
        Whether ``resume=True`` continues where the run stopped (folder
        outputs); a single-file output is started over.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.completed = 0
        self.total: int | None = None
        self.output = None
        self.resumable = True

    @property
    def exit_status(self) -> int:
        """The shell's status for death by this signal: 128 + signum (130, 143)."""
        return 128 + int(self.signum)

    def __str__(self) -> str:
        if self.total is None:
            return "interrupted"
        if not self.resumable:
            return (f"interrupted; {self.output} was not written (a single file is "
                    "started over: rerun to write it)")
        return (f"interrupted after {self.completed} of {self.total} images; "
                "rerun with --resume to finish")


# ------------------------------------------------------ optional extras
# The [dask] extra (dask.array, distributed, zarr) is imported only by the
# calls that need it, so ``import flowtrace_gpu`` never imports dask.

#: The command that installs the scale-out extra.
DASK_EXTRA = "pip install 'flowtrace-gpu[dask]'"


def require_dask(module: str, purpose: str):
    """Import ``module`` of the ``[dask]`` extra (``'dask.array'``, ``'distributed'``, ``'zarr'``).

    Raises
    ------
    FlowtraceError
        When it is not importable: says what needed it and how to install it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlowtraceError(
            f"{purpose} needs {module.split('.')[0]!r}, which is not importable ({exc}); "
            f"install the scale-out extra with: {DASK_EXTRA}"
        ) from None
