"""``saturate=P``: stretch images so that P percent of their values saturate.

The original stretches each image to its brightest value, so one bright
reflection leaves the particles dark. With ``saturate=P`` the stretch maps
the (100 - P)th percentile to the top of the range instead and clips above:

* ``normalize='frame'``: :func:`projector` wraps the backend's projector; it
  asks for the float64 projection, reads the level from the image's
  histogram (:mod:`flowtrace_gpu.kernels.saturate`) and scales by it, on the
  backend's arrays.
* ``normalize='global'``: the measuring pass hands every projection to a
  :class:`LevelRecorder`, which keeps one histogram of all values; the
  writing pass then scales every image by that one level.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from ..backends.base import Backend
from ..kernels.saturate import FRAME_BINS, RUN_BINS, level, rebin

#: Histograms of host images by NumPy, where no backend is given.
HOST = Backend()

#: A new image brighter than the run's histogram grows its range by at least
#: this factor, so a movie that brightens slowly rebins O(log) times.
_GROWTH = 1.25


def projector(backend, plan):
    """The projector for ``plan``: the backend's own, or a saturating one."""
    if plan.scaling == "frame" and plan.options.saturate:
        return SaturatingProjector(backend, plan)
    return backend.projector(plan)


class SaturatingProjector:
    """Per-image saturating stretch around any backend's float64 projection."""

    def __init__(self, backend, plan):
        self.inner = backend.projector(replace(plan, scaling="float"))
        self.percent = plan.options.saturate
        self.xp = backend.xp
        self.backend = backend

    def push(self, frame) -> None:
        self.inner.push(frame)

    def project(self):
        proj = self.inner.project()
        top = float(proj.max())
        counts = self.backend.histogram(proj, top, FRAME_BINS)
        return self.backend.scale(proj, level(counts, top, self.percent))


class LevelRecorder:
    """A writer for the measuring pass: one histogram of every value of every image.

    ``close()`` returns the level every image is then scaled by (the
    ``peak`` of ``scaling='fixed'``).

    Images are taken in order (one writer thread): the histogram's range
    grows with the brightest image so far, and images that came in another
    order would be rebinned at other points, so the level -- and every
    pixel -- could move by a bin from one run to the next. In order it is
    the level :class:`LevelShare` reproduces block by block on Dask.
    """

    parallel = False

    def __init__(self, percent: float, backend: Backend = HOST):
        self.percent = percent
        self.counts = np.zeros(RUN_BINS, np.int64)
        self.top = 0.0  # upper end of the histogram's range
        self.peak = 0.0  # the brightest value seen
        self.backend = backend
        self._lock = threading.Lock()

    def write(self, index, image) -> None:
        image_peak = float(image.max())
        with self._lock:
            if image_peak > self.top:
                new_top = grown_top(self.top, image_peak)
                self.counts = rebin(self.counts, self.top, new_top)
                self.top = new_top
            self.peak = max(self.peak, image_peak)
            top = self.top
        counts = self.backend.histogram(image, top, RUN_BINS, np)
        with self._lock:
            if top == self.top:
                self.counts += counts
            else:  # the range grew meanwhile: move this image's counts onto it
                self.counts += rebin(counts, top, self.top)

    def close(self) -> float:
        return min(level(self.counts, self.top, self.percent), self.peak)


def grown_top(top: float, image_peak: float) -> float:
    """The run histogram's range once an image of ``image_peak`` is written (LevelRecorder's rule)."""
    return max(image_peak, top * _GROWTH) if image_peak > top else top


def run_tops(peaks) -> np.ndarray:
    """Every range the run histogram takes, in order, when images of ``peaks`` are written in order."""
    tops, top = [], 0.0
    for peak in peaks:
        new = grown_top(top, float(peak))
        if new != top or not tops:
            tops.append(new)
        top = new
    return np.array(tops)


class LevelShare:
    """A block of images' share of the run histogram an in-order :class:`LevelRecorder` ends with.

    :func:`rebin` is linear, so the run's counts are the sum over images of
    each image's histogram at the range in force when it was written, moved
    through every later regrowth. Knowing the run's ranges (``tops``, from
    :func:`run_tops` of every image's peak) and the brightest value before
    this block, a block computes its share; the shares of all blocks add up
    to the counts of one LevelRecorder fed every image in order.
    ``close()`` returns the share, over ``[0, tops[-1]]``.
    """

    parallel = False  # images in order: each image's range follows the running peak

    def __init__(self, tops, peak_before: float, backend: Backend = HOST):
        self.tops = np.asarray(tops, dtype=np.float64)
        self.running = float(peak_before)
        self.by_top: dict[int, np.ndarray] = {}  # range index -> counts of its images
        self.backend = backend

    def write(self, index, image) -> None:
        self.running = max(self.running, float(image.max()))
        # The range in force: the first that covers every peak so far.
        k = min(int(np.searchsorted(self.tops, self.running)), len(self.tops) - 1)
        counts = self.backend.histogram(image, float(self.tops[k]), RUN_BINS, np)
        self.by_top[k] = self.by_top[k] + counts if k in self.by_top else counts

    def close(self) -> np.ndarray:
        counts = np.zeros(RUN_BINS, np.int64)
        for k in range(len(self.tops)):
            if k and counts.any():  # rebinning nothing gives nothing
                counts = rebin(counts, float(self.tops[k - 1]), float(self.tops[k]))
            if k in self.by_top:
                counts += self.by_top[k]
        return counts
