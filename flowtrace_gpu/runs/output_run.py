"""A :func:`~flowtrace_gpu.flowtrace` run into one output, safe to stop and to resume.

:class:`OutputRun` wraps the pipeline with what a long run on a shared
machine needs:

1. the output's lock (:mod:`flowtrace_gpu.runs.lock`), so two runs never write
   into one output;
2. removal of temporary files left there by dead runs
   (:func:`flowtrace_gpu.runs.stale.remove_stale`);
3. the manifest (:mod:`flowtrace_gpu.runs.manifest`), written before the first
   image and updated as images complete, and, with ``resume=True``, the
   images still to write: those the manifest does not list complete, or
   whose file is gone. A resumed run reads only the frames of the missing
   windows (plus the F-1 frames that prime the ring before each stretch of
   them), so its images equal an uninterrupted run's, bit for bit, and the
   finished ones are not touched;
4. errors during the run turned into one line naming the file, the frame or
   the image, how many images are complete and how to continue
   (:class:`~flowtrace_gpu.errors.IncompleteRunError`), and interruptions
   (:class:`~flowtrace_gpu.errors.RunInterrupted`) filled in with the same.

Single-file outputs (a ``.tif`` stack, a video) are complete or absent: the
file appears only when the run ends, so resuming one that was stopped
starts it over (with a note), and resuming one that is complete does nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

from ..engine.pipeline import FrameReadError
from ..errors import FlowtraceError, IncompleteRunError, RunInterrupted
from .lock import OutputLock
from .manifest import Manifest, ManifestRecorder, lock_path, manifest_path, read_manifest, to_ranges
from .stale import remove_stale

log = logging.getLogger("flowtrace_gpu")

#: Output kinds written as one file per image in a folder.
FOLDER_KINDS = ("png", "tiff")
#: Output kinds resumable image by image: those, and a zarr array (one chunk file per image).
PER_IMAGE_KINDS = FOLDER_KINDS + ("zarr",)


def refuse_overwriting_input(out: Path, image_paths, read) -> None:
    """Refuse an output that would replace a file the source reads.

    Outputs are moved into place with ``os.replace``, which replaces a
    directory entry: writing through a symbolic link or to another hard link
    of an input leaves the input intact, so only the input's own entry
    counts (under any spelling of the path).

    Raises
    ------
    FlowtraceError
        Before anything is written.
    """
    inputs = {_entry(f): f for f in read}
    for target in [out] if image_paths is None else image_paths:
        victim = inputs.get(_entry(target))
        if victim is None and image_paths is None:
            victim = next((f for f in read if _same_entry(out, f)), None)
        if victim is not None:
            raise FlowtraceError(
                f"output {target} is the input {victim}: writing it would destroy the "
                "recording; choose another output path")


def _entry(path) -> str:
    """The directory entry ``path`` names: its folder resolved, its own name as given."""
    path = os.path.abspath(path)
    return os.path.normcase(os.path.join(os.path.realpath(os.path.dirname(path)),
                                         os.path.basename(path)))


def _same_entry(a, b) -> bool:
    """Whether ``a`` is ``b`` spelled differently (a case-insensitive filesystem)."""
    try:
        return (not os.path.islink(a) and os.path.samefile(a, b)
                and os.stat(a).st_nlink == 1)
    except OSError:
        return False


class WriteFailed(Exception):
    """Writing ``path`` raised the OSError ``cause``."""

    def __init__(self, path, cause: OSError):
        super().__init__(describe_os_error(cause, path))
        self.path = Path(path)
        self.cause = cause


def describe_os_error(exc: OSError, path) -> str:
    """``'no space left on device writing out/x.png'``: the cause, then the file.

    numpy and tifffile report a full disk as a short write without an errno
    ("262144 requested and 261808 written"); that is named for what it is.
    """
    if exc.errno is not None:
        reason = exc.strerror or os.strerror(exc.errno)
    elif "requested and" in str(exc) and "written" in str(exc):
        reason = ("no space left on device" if _nearly_full(path) else
                  f"short write, disk full or over quota ({exc})")
    else:
        reason = str(exc) or type(exc).__name__
    return f"{reason[:1].lower()}{reason[1:]} writing {path}"


def _nearly_full(path) -> bool:
    folder = Path(path).parent
    try:
        return shutil.disk_usage(folder).free < 16 * 2**20
    except OSError:
        return True


class RecordingWriter:
    """A writer whose images are recorded in the manifest once in place.

    OSErrors become :class:`WriteFailed` naming the image's final path.
    ``close()`` finishes the output and records it complete.
    """

    def __init__(self, writer, recorder: ManifestRecorder, per_image: bool, path_of):
        self.writer = writer
        self.recorder = recorder
        self.per_image = per_image
        self.path_of = path_of
        self.parallel = writer.parallel

    def write(self, index: int, image) -> None:
        try:
            self.writer.write(index, image)
        except OSError as exc:
            raise WriteFailed(self.path_of(index), exc) from exc
        if self.per_image:
            self._record(self.recorder.mark, index)

    def _record(self, call, *args) -> None:
        try:
            call(*args)
        except OSError as exc:
            raise WriteFailed(self.recorder.path, exc) from exc

    def close(self):
        try:
            result = self.writer.close()
        except OSError as exc:
            raise WriteFailed(self.path_of(None), exc) from exc
        self._record(self.recorder.flush if self.per_image else self.recorder.mark_all)
        return result

    def abort(self) -> None:
        self.writer.abort()


class Segment:
    """The writer one pipeline pass gets: closing it does not finish the output."""

    def __init__(self, writer: RecordingWriter):
        self.writer = writer
        self.parallel = writer.parallel
        self.write = writer.write

    def close(self) -> None:
        """The output is finished by :meth:`OutputRun.finish`, after the last pass."""

    def abort(self) -> None:
        self.writer.abort()


class OutputRun:
    """Context manager around a run into ``out`` (see the module docstring).

    Parameters
    ----------
    out : pathlib.Path
        The output folder or file.
    kind : str
        ``'png'``, ``'tiff'`` (folders), ``'tiff-stack'``, ``'video'`` or ``'zarr'``.
    expected : Manifest
        The manifest of the run about to start (nothing complete).
    resume : bool
        Keep the images an earlier, identical run completed.
    image_paths : list of pathlib.Path, optional
        The final path of every image (folder outputs; a zarr array's chunk files).

    Attributes
    ----------
    todo : list of int
        The images to write, in order (all of them unless resuming).
    peak : float or None
        The global-normalization peak an earlier run recorded, if resuming.
    """

    def __init__(self, out: Path, kind: str, expected: Manifest, *, resume: bool,
                 image_paths: list[Path] | None = None):
        self.out = Path(out)
        self.kind = kind
        self.folder = kind in FOLDER_KINDS
        self.per_image = kind in PER_IMAGE_KINDS
        self.expected = expected
        self.resume = resume
        self.image_paths = image_paths
        self.lock = OutputLock(lock_path(self.out))
        self.recorder: ManifestRecorder | None = None
        self.todo: list[int] = []
        self.kept = 0

    # ------------------------------------------------------------ entering

    def __enter__(self) -> OutputRun:
        try:
            self.lock.acquire()
        except OSError as exc:
            fix = ("choose an output you can write to" if exc.errno in (errno.EACCES, errno.EPERM,
                   errno.EROFS) else "make room or choose another output")
            raise FlowtraceError(
                f"cannot lock the output: {describe_os_error(exc, self.lock.path)}; {fix}") from None
        try:
            self._remove_debris()
            self._start_record()
        except BaseException:
            if self.recorder is not None:
                self.recorder.release()
            self.lock.release()
            raise
        return self

    def _remove_debris(self) -> None:
        folder, target = (self.out, None) if self.folder else (self.out.parent, self.out.name)
        removed = remove_stale(folder, target)
        if removed:
            log.warning("removed %d temporary file(s) left in %s by runs that were stopped",
                        len(removed), folder)

    def _start_record(self) -> None:
        n = self.expected.n_images
        record = Manifest(**{**self.expected.__dict__, "complete": [], "global_peak": None})
        try:
            previous = read_manifest(self.out)
        except FlowtraceError:
            if self.resume:
                raise
            previous = None  # unreadable: this run writes a new one
        if self.resume:
            done = self._resumable(previous)
            if previous is not None and done is not None:
                record.complete = to_ranges(done)
                record.global_peak = previous.global_peak
                record.created = previous.created
        elif previous is not None and not previous.is_complete:
            log.warning("%s holds an unfinished run (%d of %d images); starting over "
                        "(--resume / resume=True would finish it instead)",
                        self.out, previous.n_complete, previous.n_images)
        self.recorder = ManifestRecorder(record, manifest_path(self.out))
        try:
            self.recorder.flush()  # the record exists before the first image
        except OSError as exc:
            raise FlowtraceError(
                f"cannot write the manifest: {describe_os_error(exc, self.recorder.path)}; "
                "make room or choose another output") from None
        self.recorder.reserve()
        self.kept = self.recorder.n_recorded
        self.todo = [i for i in range(n) if not self.recorder.is_done(i)]
        if self.resume and self.kept:
            log.info("resuming %s: %d of %d images complete, %d to write",
                     self.out, self.kept, n, len(self.todo))

    def _resumable(self, previous: Manifest | None):
        """The images kept from ``previous``, or None to start over; refuses a different run."""
        if previous is None:
            log.info("nothing to resume in %s: starting a new run", self.out)
            return None
        differences = previous.differences(self.expected)
        if differences:
            raise FlowtraceError(
                f"cannot resume {self.out}: it was written with other settings or from another "
                f"source ({'; '.join(differences)}); run without resume to start it over, "
                "or write elsewhere")
        if not self.per_image:
            if previous.is_complete and self.out.exists():
                return range(previous.n_images)
            log.warning("%s is one file, which cannot be resumed: starting it over", self.out)
            return None
        return [i for i in previous.complete_indices() if self.image_paths[i].exists()]

    # ------------------------------------------------------------ running

    @property
    def peak(self) -> float | None:
        return self.recorder.manifest.global_peak

    def set_peak(self, peak: float) -> None:
        """Record the global peak (measured before any image is written)."""
        try:
            self.recorder.set_peak(peak)
        except OSError as exc:
            raise WriteFailed(self.recorder.path, exc) from exc

    def segments(self, frames_to_merge: int) -> list[tuple[int, int]]:
        """Stretches ``(first, last)`` of windows to compute, covering :attr:`todo`.

        Each stretch reads its frames from F-1 before its first window on.
        Stretches closer than F windows are joined: computing through the
        gap reads fewer frames than priming the ring again.
        """
        stretches: list[list[int]] = []
        for i in self.todo:
            if stretches and i - stretches[-1][1] <= frames_to_merge:
                stretches[-1][1] = i
            else:
                stretches.append([i, i])
        return [(a, b) for a, b in stretches]

    def wrap(self, writer) -> RecordingWriter:
        """``writer`` recording each image in the manifest."""
        def path_of(index):
            if self.per_image and index is not None:
                return self.image_paths[index]
            return self.out
        return RecordingWriter(writer, self.recorder, self.per_image, path_of)

    def result(self):
        """What flowtrace returns: every image path (folders) or the file."""
        return list(self.image_paths) if self.folder else self.out

    # ------------------------------------------------------------ leaving

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc is not None:
                self._stop(exc)
        finally:
            self.recorder.release()
            self.lock.release()
        return False

    def _stop(self, exc: BaseException) -> None:
        """Record what is complete; turn ``exc`` into the error users see."""
        try:
            self.recorder.flush()
        except OSError as err:
            if getattr(exc, "path", None) != self.recorder.path:  # else the error says it
                log.warning("could not update the manifest (%s); it lists fewer images than are "
                            "complete, and resume rewrites those",
                            describe_os_error(err, self.recorder.path))
        done, total = self.recorder.n_recorded, self.expected.n_images
        if isinstance(exc, RunInterrupted):
            exc.completed, exc.total, exc.output, exc.resumable = done, total, self.out, self.per_image
            return
        resume = "rerun with --resume (resume=True) to finish"
        if isinstance(exc, WriteFailed):
            cause = str(exc)
            how = (f"free space (or fix the cause) and {resume}" if self.per_image else
                   "free space (or fix the cause) and run again (a single file is started over)")
        elif isinstance(exc, FrameReadError):
            cause = f"stopped at frame {getattr(exc, 'frame', exc.position)}: {exc.cause}"
            how = (f"if the file was only unreachable, {resume}; if it is damaged, repair it and "
                   "run again without resume (a changed source starts over)" if self.per_image else
                   "make the file readable and run again (a single file is started over)")
        else:
            return  # a bug or a refusal: raised as it is, the manifest up to date
        state = (f"{done} of {total} images are complete in {self.out}" if self.per_image else
                 f"{self.out} was not written")
        raise IncompleteRunError(f"{cause}; {state}; {how}", completed=done, total=total,
                                 output=self.out) from getattr(exc, "cause", exc)
