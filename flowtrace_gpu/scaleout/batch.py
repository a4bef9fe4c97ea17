"""An archive of recordings on a dask cluster: :func:`flowtrace_batch`.

One task per recording, each running :func:`flowtrace_gpu.flowtrace` on a
worker into ``out_root/<recording name>/``; the scheduler is
``distributed``'s, which reruns a recording elsewhere when its worker dies.
Tasks receive paths and options, never frames.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..errors import FlowtraceError, require_dask
from ..options import FLOWTRACE, registry, split

#: What a recording's task did.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"

#: Options flowtrace_batch sets itself, not passed through to each flowtrace.
_OWN = ("progress", "resume")


@dataclass
class RecordingResult:
    """The outcome of one recording of a batch."""

    source: Path
    out: Path
    status: str
    #: What flowtrace returned (the images written), for a recording traced now.
    outputs: list = field(default_factory=list)
    #: The error's message, for a failed recording.
    error: str | None = None


class BatchFailed(FlowtraceError):
    """Some recordings of a batch failed; the others completed. ``results`` holds every outcome."""

    def __init__(self, message: str, results: list[RecordingResult]):
        super().__init__(message)
        self.results = results


def flowtrace_batch(sources, frames_to_merge, out_root, *, client=None, workers=None,
                    resume=True, progress=None, **options) -> list[RecordingResult]:
    """Trace every recording of an archive, one task per recording, on a dask cluster.

    Parameters
    ----------
    sources : path-like, glob pattern, or a sequence of them
        Recordings as :func:`flowtrace_gpu.flowtrace` reads them (folders of
        frames, TIFF stacks, videos, camera files, zarr arrays); patterns such
        as ``'archive/*.tif'`` are expanded (sorted).
    frames_to_merge : int
        Frames per window, F.
    out_root : path-like
        Recording ``rec.tif`` is written to ``out_root/rec/``: exactly what
        ``flowtrace('rec.tif', F, 'out_root/rec')`` writes.
    client : distributed.Client or str, optional
        ``None`` starts a local cluster of ``workers`` processes with one
        thread each and closes it at the end; a ``distributed.Client`` or a
        scheduler address (``'tcp://host:8786'``) runs on that cluster.
    workers : int, optional
        Processes of the local cluster (``client=None`` only); default the
        machine's cores. Each recording then uses ``max_cores`` = cores /
        workers unless ``max_cores`` is given.
    resume : bool, default True
        Skip recordings whose outputs are complete (by their run manifests)
        and resume half-done ones (``flowtrace(..., resume=True)``); False
        traces every recording anew.
    progress : bool, optional
        A bar over recordings on stderr; default: only when stderr is a terminal.
        A summary line ends the call unless ``progress=False`` (failures
        are always reported).
    **options
        Every keyword of :func:`flowtrace_gpu.flowtrace` (``subtract_median``,
        ``windows``, ``format``, ``max_cores``, ``backend``, ...), for every
        recording.

    Returns
    -------
    list of RecordingResult
        One per recording, in the order of ``sources``.

    Raises
    ------
    FlowtraceError
        Before anything starts: a missing source, a pattern matching nothing,
        two recordings with the same name, a bad option.
    BatchFailed
        After every recording ran, if some failed: its message names each
        failed recording and its error; ``results`` holds every outcome.
    """
    config.validate()
    paths = expand_sources(sources)
    options = check_options(options)
    out_root = Path(out_root)
    outs = output_folders(paths, out_root)
    _check_output_kind(outs[0], options.get("format"))
    show = sys.stderr.isatty() if progress is None else progress
    if not isinstance(show, bool):
        raise FlowtraceError(f"progress must be True, False or None, got {progress!r}")

    results: dict[int, RecordingResult] = {}
    todo = []
    for i, (path, out) in enumerate(zip(paths, outs)):
        if resume and is_complete(out):
            results[i] = RecordingResult(path, out, SKIPPED)
        else:
            todo.append(i)
    if todo:
        with _connect(client, workers) as (dask_client, cores):
            if "max_cores" not in options and cores is not None:
                options["max_cores"] = cores
            _run(dask_client, [(i, paths[i], outs[i]) for i in todo], frames_to_merge, options,
                 resume, results, show)
    ordered = [results[i] for i in range(len(paths))]
    failed = [r for r in ordered if r.status == FAILED]
    if progress is not False or failed:
        print(summary(ordered), file=sys.stderr)
    if failed:
        lines = "\n".join(f"  {r.source}: {r.error}" for r in failed)
        raise BatchFailed(f"{len(failed)} of {len(ordered)} recordings failed "
                          f"(the others completed):\n{lines}", ordered)
    return ordered


def _run(client, jobs, frames_to_merge, options, resume, results, show) -> None:
    """Submit one task per recording and collect each outcome as it completes."""
    distributed = require_dask("distributed", "flowtrace_batch")
    from tqdm.auto import tqdm

    futures = {}
    for i, path, out in jobs:
        future = client.submit(trace_recording, str(path), frames_to_merge, str(out), options,
                               resume, key=f"flowtrace-{out.name}-{i}", pure=False)
        futures[future] = (i, path, out)
    with tqdm(total=len(futures), unit="recording", desc="flowtrace batch", disable=not show,
              file=sys.stderr, dynamic_ncols=True) as bar:
        for future in distributed.as_completed(futures):
            i, path, out = futures[future]
            try:
                written = future.result()
            except Exception as exc:  # reported by name; the others go on
                results[i] = RecordingResult(path, out, FAILED, error=_describe(exc))
            else:
                listed = written if isinstance(written, list) else [written]
                results[i] = RecordingResult(path, out, DONE, outputs=listed)
            bar.update()


def trace_recording(source: str, frames_to_merge, out: str, options: dict, resume: bool):
    """A task: ``flowtrace(source, F, out, resume=resume, **options)`` on a worker."""
    from ..api import flowtrace

    return flowtrace(source, frames_to_merge, out, progress=False, resume=resume, **options)


def is_complete(out: Path) -> bool:
    """Whether a recording's output ``out`` is complete, by its run manifest."""
    from ..runs.manifest import read_manifest

    try:
        manifest = read_manifest(out)
    except FlowtraceError:  # unreadable: its run decides (resume refuses it, naming why)
        return False
    return manifest is not None and manifest.is_complete


# --------------------------------------------------------------- checks

def expand_sources(sources) -> list[Path]:
    """The recordings named by ``sources``: paths and glob patterns, checked to exist."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths: list[Path] = []
    for item in sources:
        text = os.fspath(item)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise FlowtraceError(f"source pattern {text!r} matches nothing; check the path")
            paths.extend(Path(m) for m in matches)
        elif not Path(text).exists():
            raise FlowtraceError(
                f"source {text!r} does not exist; give recordings (folders of frames, TIFF "
                "stacks, videos, camera files, zarr arrays) or glob patterns")
        else:
            paths.append(Path(text))
    if not paths:
        raise FlowtraceError("no sources given; pass one or more recordings or glob patterns")
    return paths


def recording_name(path: Path) -> str:
    """A recording's output folder name: its file or folder name without the suffix."""
    return path.name[:-len(path.suffix)] if path.suffix else path.name


def output_folders(paths: list[Path], out_root: Path) -> list[Path]:
    """``out_root/<name>`` per recording; two recordings may not share a name."""
    seen: dict[str, Path] = {}
    for path in paths:
        name = recording_name(path)
        if name in seen and seen[name].resolve() != path.resolve():
            raise FlowtraceError(
                f"recordings {str(seen[name])!r} and {str(path)!r} would both be written to "
                f"{str(out_root / name)!r}; rename one or trace them in separate batches")
        seen[name] = path
    if len(seen) < len(paths):
        raise FlowtraceError("a recording is named twice in sources; give each once")
    return [out_root / recording_name(p) for p in paths]


def check_options(options: dict) -> dict:
    """``flowtrace``'s keywords, checked now (an unknown name or a bad value fails before any task)."""
    known = {o.name for o in registry() if FLOWTRACE in o.calls} - set(_OWN)
    unknown = sorted(set(options) - known)
    if unknown:
        raise FlowtraceError(
            f"flowtrace_batch got unknown option(s) {', '.join(unknown)}; it takes flowtrace's "
            f"options: {', '.join(sorted(known))}")
    split(options, FLOWTRACE)  # raises FlowtraceError naming a bad value
    return dict(options)


def _check_output_kind(folder: Path, format) -> None:
    from ..io.formats import output_kind

    output_kind(folder, format)  # e.g. format='video' cannot fill a folder


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def summary(results: list[RecordingResult]) -> str:
    """One line of counts, then one line per failed recording."""
    counts = {s: sum(r.status == s for r in results) for s in (DONE, SKIPPED, FAILED)}
    head = (f"flowtrace batch: {len(results)} recordings: {counts[DONE]} traced, "
            f"{counts[SKIPPED]} already complete, {counts[FAILED]} failed")
    return "\n".join([head] + [f"  failed: {r.source}: {r.error}" for r in results
                               if r.status == FAILED])


# --------------------------------------------------------------- cluster

@contextlib.contextmanager
def _connect(client, workers):
    """``(client, cores per recording or None)`` for the batch; closes what it opened."""
    distributed = require_dask("distributed", "flowtrace_batch")
    if workers is not None and client is not None:
        raise FlowtraceError("workers sizes the local cluster; with a client, size your cluster")
    if isinstance(client, distributed.Client):
        yield client, None
    elif isinstance(client, str):
        try:
            opened = distributed.Client(client, timeout="30s")
        except OSError as exc:
            raise FlowtraceError(
                f"cannot reach the dask scheduler at {client!r} ({exc}); start it "
                "(dask scheduler) or check the address") from None
        with opened:
            yield opened, None
    elif client is not None:
        raise FlowtraceError(
            f"client must be None, a distributed.Client or a scheduler address, got {client!r}")
    else:
        cores = os.cpu_count() or 1
        n = cores if workers is None else workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise FlowtraceError(f"workers must be a whole number >= 1, got {workers!r}")
        with local_cluster(n) as cluster, distributed.Client(cluster) as local:
            yield local, max(1, cores // n)


def worker_environ() -> dict:
    """Environment of the worker processes this package starts (see config ``dask_malloc_*``).

    distributed sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers, which
    also fixes glibc's mmap threshold at 128 KiB: every frame-sized array
    is then mapped and unmapped, its pages faulted in afresh. These values
    keep frame-sized blocks on the heap, as glibc's own adaptive threshold
    would; a variable already set in the environment wins.
    """
    return {"MALLOC_TRIM_THRESHOLD_": int(config.get("dask_malloc_trim")),
            "MALLOC_MMAP_THRESHOLD_": int(config.get("dask_malloc_mmap"))}


def local_cluster(n_workers: int, **kwargs):
    """A ``distributed.LocalCluster`` of ``n_workers`` processes, one thread each, tuned for tracing."""
    dask = require_dask("dask", "flowtrace_batch")
    distributed = require_dask("distributed", "flowtrace_batch")
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.update(worker_environ())
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                        processes=True, dashboard_address=None, **kwargs)
