"""A ``Trace all...`` run of a recording file, in a process of its own.

The widget starts ``python -m flowtrace_gpu.napari._job`` with the run as one
JSON object on stdin, ``{"source", "frames_to_merge", "output", "options"}``,
and reads JSON lines on stdout: ``{"progress": [n, total, desc]}`` while the
run goes, then one of ``{"done": ...}``, ``{"interrupted": ...}`` or
``{"error": ...}``. :func:`~flowtrace_gpu.flowtrace` runs in this process's
main thread, so Cancel is a SIGINT: the run stops as after Ctrl-C
(:mod:`flowtrace_gpu.runs.signals`), finishing the images in flight,
recording the complete ones in the output's manifest and releasing its lock,
so ``resume=True`` finishes it later.
"""

from __future__ import annotations

import json
import sys

from tqdm.std import tqdm


def _say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class LineProgress(tqdm):
    """A tqdm bar that reports ``[n, total, desc]`` as JSON lines instead of drawing itself."""

    def display(self, msg=None, pos=None):
        _say({"progress": [self.n, self.total, self.desc]})
        return True


def main() -> int:
    job = json.load(sys.stdin)
    import tqdm.auto

    # The run's bars (flowtrace_gpu.engine.pipeline takes tqdm.auto's at each
    # pass) become lines for the widget's napari progress bar.
    tqdm.auto.tqdm = LineProgress
    from flowtrace_gpu import FlowtraceError, RunInterrupted, flowtrace

    try:
        result = flowtrace(job["source"], job["frames_to_merge"], job["output"], progress=True,
                           **job["options"])
    except RunInterrupted as exc:
        _say({"interrupted": str(exc), "completed": exc.completed, "total": exc.total,
              "resumable": exc.resumable})
        return exc.exit_status
    except FlowtraceError as exc:
        _say({"error": str(exc)})
        return 1
    count = len(result) if isinstance(result, list) else 1
    _say({"done": str(job["output"]), "files": count})
    return 0


if __name__ == "__main__":
    sys.exit(main())
