"""Weighted projections (``color_series``, ``fade_tails``) of the Numba backend, certified.

Three methods, all in float32 and all giving the NumPy reference's bytes
(:mod:`kernels.numba.color` explains how):

* :class:`BruteColor` multiplies every frame of the window by its weights
  (any weights: colormaps, fades, RGB frames): O(F) per pixel;
* :class:`RecordsColor` keeps per pixel the frames that can still be the
  maximum: about the same cost whatever F, for weights that only grow or
  only fall with the position and fit a float32 formula (the default ramp,
  two-color colormaps, ``fade_tails``; :func:`records_plan`);
* :class:`ShiftedColor`, brute force after ``subtract_first``,
  ``subtract_median``, ``take_diff``, ``invert_color`` or
  ``add_first_frame`` (values may be negative: the image's peak comes from
  the image itself).

:func:`color_method` says which applies to a plan (``'auto'``: records from
the ``color_records_min_f`` setting on); :func:`make_color` builds the
first two, the projector that keeps the ring and median the third.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ... import config
from ...kernels.colors import WeightMode

#: float32 unit roundoff.
U32 = 2.0 ** -24
#: float64 unit roundoff.
U64 = 2.0 ** -53
#: Rounding slack of the 8-bit decision in output units: float32 ``y * scale``
#: and ``+ 0.5`` (each within ``U32 * 256`` near 255), and NumPy's own ``+ 0.5``.
_STRETCH_SLACK = 800 * U32 + 1e-12
#: A formula is used when its error bound stays below this many float32
#: roundoffs of the column's largest weight (else ``y + 0.5`` would fall
#: inside the margin too often for the float32 products to pay).
_MAX_REL_DELTA = 64 * U32
#: Capacity of the records' deque and of the block's append-only list: more
#: candidates than this (rare: a pixel fading steadily) send the pixel to
#: the exact path until they leave.
DEQUE_ROWS = 32
LIST_ROWS = 32
SWEEP_ROWS = 32

METHODS = ("auto", "brute", "records", "exact")


@functools.cache
def _kernels():
    from ...kernels.numba import color as numba_color

    return numba_color


def _bound(coef, w):
    """Largest error of the float32 formula ``coef`` against the exact weights ``w``."""
    a, b, c, d = (float(v) for v in coef)
    pos = np.arange(len(w), dtype=np.float64)
    model = (a + b * pos) * (c + d * pos)  # float64: the float32 constants and pos are exact
    size = (abs(a) + abs(b) * pos) * (abs(c) + abs(d) * pos)
    # Five float32 roundings in the kernel (b*pos, +a, d*pos, +c, the product),
    # plus this float64 evaluation.
    err = np.abs(model - w) + size * (6 * U32 + 8 * U64)
    return float(err.max())


def fit_weights(w: np.ndarray):
    """A float32 formula ``(a + b*pos) * (c + d*pos)`` for the weights ``w[pos]``.

    Tries an affine formula (ramps, two-color colormaps, the fade) and an
    affine color times the fade ``pos / (K - 1)``. Returns ``(coef, delta)``
    -- ``coef`` float32 ``(a, b, c, d)`` and ``delta`` a bound on
    ``|formula(pos) - w[pos]|`` as the kernel evaluates it -- or None when
    neither fits.
    """
    w = np.asarray(w, np.float64)
    k = len(w)
    top = float(np.abs(w).max()) if k else 0.0
    span = k - 1 if k > 1 else 1
    trials = [(w[0], (w[-1] - w[0]) / span, 1.0, 0.0)]
    if k >= 3:  # (a + b*pos) * pos / (K - 1): fit g(pos) = w / (pos / (K - 1)) at 1 and K-1
        d = 1.0 / (k - 1)
        g1 = w[1] / d
        g2 = w[-1] / (d * (k - 1))
        b = (g2 - g1) / (k - 2)
        trials.append((g1 - b, b, 0.0, d))
    best = None
    for trial in trials:
        coef = np.array(trial, np.float32)
        delta = _bound(coef, w)
        if best is None or delta < best[1]:
            best = (coef, delta)
    if best[1] > _MAX_REL_DELTA * top + 1e-300:
        return None
    return best


def _weights(plan) -> np.ndarray:
    """``plan.colors`` as a (K, ncol) float64 array."""
    weights = np.asarray(plan.colors, np.float64)
    return np.ascontiguousarray(weights if weights.ndim == 2 else weights[:, None])


def brute_applies(plan) -> bool:
    """Whether the certified float32 paths apply: weights alone on unsigned frames.

    Needs weights (``color_series`` or ``fade_tails``), no first-frame,
    median or difference steps and no ``invert_color`` (values then stay
    non-negative), unsigned (or bool) frames, and an 8-bit image
    (``normalize`` 'frame', or 'global' once its peak is known).
    """
    opts = plan.options
    if plan.colors is None:
        return False
    if opts.invert_color or opts.subtract_first or opts.subtract_median or opts.take_diff \
            or opts.add_first_frame:
        return False
    return plan.scaling in ("frame", "fixed") and plan.dtype.kind in "ub"


def shifted_applies(plan) -> bool:
    """Whether the certified shifted path applies (:class:`ShiftedColor`).

    Weights (``color_series`` or ``fade_tails``) that :func:`brute_applies`
    leaves out because of ``subtract_first``, ``subtract_median``,
    ``invert_color``, ``add_first_frame`` or ``take_diff`` (or signed
    frames), on integer frames of at most 16 bits (every shifted value is
    then a multiple of 0.5 exact in float32, every difference of order up
    to 7 an integer below 2**24), with 8-bit output. Float frames of at
    most 32 bits take it without a shift or a difference (``invert_color``
    and ``add_first_frame`` alone): their values are exact in float32, but
    a float's shift or difference is not.
    """
    opts = plan.options
    if plan.colors is None or brute_applies(plan) or (opts.take_diff and opts.diff_order > 7):
        return False
    if plan.scaling not in ("frame", "fixed"):
        return False
    dtype = _storage(plan.dtype)
    if dtype.kind == "f":
        return dtype.itemsize <= 4 and not (opts.subtract_first or opts.subtract_median
                                            or opts.take_diff)
    return dtype.kind in "iu" and dtype.itemsize <= 2


def records_plan(plan):
    """Per weight column ``(coef, delta, cls)``, or None when the records path does not apply.

    On top of :func:`brute_applies`: one weight column per image column
    (not RGB frames with colors), every column's weights monotone in the
    position and fitted by :func:`fit_weights`. ``cls`` is 0 where the
    weights never fall (the newest record dominates), 1 where they never grow.
    """
    if not brute_applies(plan) or plan.weight_mode == WeightMode.CHANNELS:
        return None
    weights = _weights(plan)
    if weights.shape[0] != plan.frames_to_merge or (weights < 0).any():
        return None
    columns = []
    for col in weights.T:
        steps = np.diff(col)
        if (steps >= 0).all():
            cls = 0
        elif (steps <= 0).all():
            cls = 1
        else:
            return None
        fit = fit_weights(col)
        if fit is None:
            return None
        columns.append((fit[0], fit[1], cls))
    return columns


def color_method(plan, method: str = "auto") -> str | None:
    """The method of a weighted projection: 'records', 'brute', 'shifted', or None.

    'records' and 'brute' are the certified paths of weights alone on
    unsigned frames (:func:`brute_applies`; ``'auto'`` takes the records
    from F = ``color_records_min_f`` on, where they apply, else brute
    force); 'shifted' is the certified brute force after a shift
    (:func:`shifted_applies`; ``'auto'`` or ``'brute'`` ask for it); None
    is the exact float64 pass (every other plan with weights, plans
    without weights, and ``'exact'``, the yardstick of the benchmarks).
    Asking for a method that does not apply is a ``ValueError``.
    """
    if method not in METHODS:
        raise ValueError(f"color method must be one of {METHODS}, got {method!r}")
    if method == "exact":
        return None
    if not brute_applies(plan):
        if shifted_applies(plan) and method in ("auto", "brute"):
            return "shifted"
        if method != "auto":
            raise ValueError(f"the color method {method!r} needs weights on integer frames "
                             "(records: weights alone on unsigned frames)")
        return None
    if method == "records" and records_plan(plan) is None:
        raise ValueError("the records path needs monotone weights that fit a float32 formula")
    if method != "auto":
        return method
    if plan.frames_to_merge >= config.get("color_records_min_f") and records_plan(plan):
        return "records"
    return "brute"


def _threads() -> int:
    """Numba's thread count: the rows of the per-thread scratch buffers."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


def _storage(dtype):
    return np.dtype(np.uint8) if np.dtype(dtype).kind == "b" else np.dtype(dtype)


class _CertifiedColor:
    """The ring, the frames' maxima and the stretch of both certified methods.

    Attributes
    ----------
    exact : int
        Values recomputed in float64 so far (near a rounding boundary, or
        on a pixel whose candidates overflowed).
    """

    def __init__(self, plan, slack: float = 0.0):
        if not brute_applies(plan):
            raise ValueError("the certified color paths need weights alone on unsigned frames")
        self.plan = plan
        self.f = f = plan.frames_to_merge
        self.npix = math.prod(plan.frame_shape)
        self.xdtype = _storage(plan.dtype)
        self.w64 = _weights(plan)
        self.wmax = self.w64.max(axis=0)
        self.ring = np.empty((f, self.npix), self.xdtype)
            # Each frame's largest value; of each channel on RGB frames with colors,
        # whose channels take different weights.
        self.per_value = plan.weight_mode == WeightMode.CHANNELS
        self.fmax = np.zeros((f, 3 if self.per_value else 1), np.float64)
        self.chunk = 3 * 21846
        self.max_scratch = np.empty((-(-self.npix // self.chunk), 3), np.float64)
        self.counts = np.zeros(2, np.int64)
        self.count = 0
        self.slack = float(slack)

    @property
    def exact(self) -> int:
        return int(self.counts[0])

    def _enter(self, x):
        """Store frame ``x`` (flat, storage dtype) in the ring; returns its index t."""
        t = self.count
        self.ring[t % self.f] = x
        _kernels().frame_max(x, self.chunk, self.max_scratch, self.fmax[t % self.f])
        self.count = t + 1
        return t

    def _scale(self, t, delta):
        """Stretch factor and per-column margins of the window ending at frame t.

        ``delta`` bounds, per column, the float32 weights' error. A value
        ``x * w`` then errs by at most ``x * (delta + (U32 + U64) * w)``
        (weight, product and NumPy's own rounding); over the image ``x`` is
        at most the window's largest frame maximum. Scaled, plus the
        stretch's own float32 rounding, that is how close to a rounding
        boundary the float32 value may lie and still decide the byte.
        """
        fmax = np.roll(self.fmax, -((t + 1) % self.f), axis=0)  # oldest first
        plan = self.plan
        if plan.scaling == "fixed":
            peak = float(plan.peak)
        else:
            # The image's peak is the largest over its frames of fl(frame max * w[j]):
            # fl(v * w) grows with v.
            peak = float((fmax * self.w64).max())
        scale = 255.0 / peak if peak != 0 else 1.0
        err = float(fmax.max()) * (delta * (1 + U32) + (U32 + U64) * self.wmax)
        margins = scale * err * (1 + 1e-6) + _STRETCH_SLACK + self.slack
        return scale, (margins * (1 + 4 * U32)).astype(np.float32)


class BruteColor(_CertifiedColor):
    """Every frame of the window times its weights, in float32 (any weights).

    Parameters
    ----------
    plan : flowtrace_gpu.engine.plan.TracePlan
        A plan :func:`brute_applies` accepts.
    block : int
        Values per parallel block (tests shrink it).
    slack : float
        Added to the margins (tests: 1 sends every value to the exact path).
    """

    method = "brute"

    def __init__(self, plan, block: int = 8192, slack: float = 0.0):
        super().__init__(plan, slack)
        self.w32 = self.w64.astype(np.float32)
        self.delta = np.abs(self.w32.astype(np.float64) - self.w64).max(axis=0)
        self.ncol = 1 if self.per_value else self.w64.shape[1]
        self.block = max(1, min(int(block), self.npix))
        threads = _threads()
        self.sc_flags = np.zeros((threads, self.block), np.uint8)
        self.sc_best = np.zeros((threads, 6, self.block), np.float32)
        self.sc_cols = np.zeros((threads, 3, self.block), np.uint8)

    def push(self, x) -> None:
        """Add frame ``x`` (flat, storage dtype)."""
        self._enter(x)

    def image(self) -> np.ndarray:
        """The last window's image, a new flat array of ``npix * ncol`` uint8 values
        (value p, column c at ``p * ncol + c``)."""
        t = self.count - 1
        scale, margins = self._scale(t, self.delta)
        out = np.empty(self.npix * self.ncol, np.uint8)
        _kernels().color_brute(self.ring, t, self.w32, self.w64, self.per_value, scale,
                               margins, out, self.counts, self.sc_flags, self.sc_best,
                               self.sc_cols, self.block)
        return out


class RecordsColor(_CertifiedColor):
    """Each pixel's candidate frames, O(records) per frame (see :func:`records_plan`).

    Parameters
    ----------
    plan : flowtrace_gpu.engine.plan.TracePlan
        A plan :func:`records_plan` accepts.
    block : int
        Pixels per block of the candidate lists (tests shrink it).
    rows : int, optional
        Capacity of the candidate lists (default :data:`DEQUE_ROWS`,
        :data:`LIST_ROWS`, :data:`SWEEP_ROWS`); tests shrink it to overflow.
    slack : float
        As for :class:`BruteColor`.

    Attributes
    ----------
    overflows : int
        Candidates that did not fit a list (their pixels went exact).
    """

    method = "records"

    def __init__(self, plan, block: int = 1024, rows: int | None = None, slack: float = 0.0):
        super().__init__(plan, slack)
        columns = records_plan(plan)
        if columns is None:
            raise ValueError("the records path does not apply to this plan")
        f, n = self.f, self.npix
        self.ncol = len(columns)
        self.coef = np.stack([c[0] for c in columns]).astype(np.float32)
        self.delta = np.array([c[1] for c in columns], np.float64)
        self.cls = np.array([c[2] for c in columns], np.int64)
        down = np.flatnonzero(self.cls == 1)
        self.dslot = np.full(self.ncol, -1, np.int64)
        self.dslot[down] = np.arange(len(down))
        # Positions and block indices (< F) in the narrowest dtype.
        self.tdtype = np.dtype(np.uint8 if f <= 255 else np.uint16)
        block = max(1, min(int(block), n))
        nblocks = -(-n // block)
        self.srows = min(f, rows or SWEEP_ROWS)
        lrows = min(f, rows or LIST_ROWS) if len(down) else 0
        rows = min(f, rows or DEQUE_ROWS) if (self.cls == 0).any() else 0
        # Row R of each list stays empty (the source of the last row's shift).
        self.dq_val = np.zeros((nblocks, rows + 1, block), self.xdtype)
        self.dq_tim = np.zeros((nblocks, rows + 1, block), self.tdtype)
        self.dq_rows = np.zeros(nblocks, np.int64)
        self.bl_val = np.zeros((nblocks, lrows + 1, block), self.xdtype)
        self.bl_off = np.zeros((nblocks, lrows + 1, block), self.tdtype)
        self.bl_rows = np.zeros(nblocks, np.int64)
        self.bl_cnt = np.zeros(n, self.xdtype)
        self.pm = np.zeros(n, self.xdtype)
        self.a_val = np.zeros((len(down), f if len(down) else 0, n), self.xdtype)
        self.a_pos = np.zeros((len(down), f if len(down) else 0, n), self.tdtype)
        self.lossy = np.full(n, -1, np.int64)
        self.blk_lossy = np.full(nblocks, -1, np.int64)
        self.tags = np.zeros(3, self.tdtype)
        self._image = self._last = None
        threads = _threads()
        self.sc_mask = np.zeros((threads, 2, block), self.xdtype)
        self.sc_flags = np.zeros((threads, block), np.uint8)
        self.sc_best = np.zeros((threads, 2 * self.ncol, block), np.float32)
        self.sc_cols = np.zeros((threads, self.ncol, block), np.uint8)

    @property
    def overflows(self) -> int:
        return int(self.counts[1])

    def push(self, x) -> None:
        """Add frame ``x`` (flat, storage dtype); once the window is full this
        also forms its image, while each block's candidates are in cache."""
        t = self._enter(x)
        project = t >= self.f - 1
        self.tags[:] = (self.f - 1, 1, t % self.f)
        out = np.empty(self.npix * self.ncol if project else 0, np.uint8)
        scale, margins = (self._scale(t, self.delta) if project
                          else (1.0, np.zeros(self.ncol, np.float32)))
        _kernels().color_step(
            x, self.ring, t, self.coef, self.cls, self.dslot, self.w64,
            self.dq_val, self.dq_tim, self.dq_rows, self.tags,
            self.bl_val, self.bl_off, self.bl_rows, self.bl_cnt, self.pm,
            self.a_val, self.a_pos, self.lossy, self.blk_lossy, scale, margins, out, project,
            self.counts, self.sc_mask, self.sc_flags, self.sc_best, self.sc_cols, self.srows)
        self._image = out if project else None

    def image(self) -> np.ndarray:
        """As :meth:`BruteColor.image` (formed by :meth:`push`; a copy if asked twice)."""
        image, self._image = self._image, None
        if image is None:
            if self._last is None:
                raise RuntimeError("image() needs a full window of frames")
            return self._last.copy()
        self._last = image
        return image


class ShiftedColor:
    """The weighted image of shifted values (or differences), in float32, certified
    (:func:`shifted_applies`).

    Holds no frames: its owner keeps the window's ring and median and
    passes them to :meth:`image`; :meth:`note` records each frame's
    extremes, which bound the shifted values. Three passes (kernels in
    :mod:`kernels.numba.color_shifted`): every value's projection in float32 and
    each block's largest; the image's exact peak, recomputed in float64
    for the pixels with a value within the error bound of the largest; the
    8-bit image, recomputing in float64 the pixels with a value too close
    to a rounding boundary.

    Parameters
    ----------
    plan : flowtrace_gpu.engine.plan.TracePlan
        A plan :func:`shifted_applies` accepts.
    block : int
        Pixels per block of the passes (tests shrink it).
    slack : float
        Added to the stretch's margin (tests: 1 sends every value to the exact path).

    Attributes
    ----------
    exact : int
        Values recomputed in float64 so far (near a rounding boundary).
    peak_candidates : int
        Values recomputed in float64 to find the images' exact peaks so far
        (every value of a pixel with a candidate).
    """

    def __init__(self, plan, block: int = 8192, slack: float = 0.0):
        if not shifted_applies(plan):
            raise ValueError("the shifted color path needs weights on integer frames of at "
                             "most 16 bits (take_diff of order <= 7), or float frames of at "
                             "most 32 bits without a shift or a difference, with 8-bit output")
        opts = plan.options
        self.plan = plan
        self.f = f = plan.frames_to_merge
        self.npix = math.prod(plan.frame_shape)
        sign = -1.0 if opts.invert_color else 1.0
        # invert_color: offset - min_j fl(v w) == offset + max_j fl(v * -w), exactly
        self.w64 = np.ascontiguousarray(sign * _weights(plan))
        self.w32 = self.w64.astype(np.float32)
        self.wmax = float(np.abs(self.w64).max())
        nonzero = self.w64 != 0  # where a weight is 0, so is its float32 twin
        self.wrel = float((np.abs(self.w32.astype(np.float64) - self.w64)[nonzero]
                           / np.abs(self.w64[nonzero])).max(initial=0.0))
            # RGB frames with colors: value p takes column p % 3, one output value per value
        self.per_value = plan.weight_mode == WeightMode.CHANNELS
        self.ncol = 1 if self.per_value else self.w64.shape[1]
        self.offset = float(plan.invert_offset) if opts.invert_color else 0.0
        self.off_err = abs(float(np.float32(self.offset)) - self.offset)
        self.diff_order = opts.diff_order if opts.take_diff else 0
        # A shift drops out of the differences exactly: they are taken of the raw frames.
        self.shift_mode = (0 if self.diff_order else 2 if opts.subtract_median
                           else 1 if opts.subtract_first else 0)
        self.add_first = bool(opts.add_first_frame)
        if self.diff_order > 1:  # the block's F rows of differences stay in L2 (float32)
            block = min(int(block), max(256, 2 ** 16 // f))
        self.block = max(1, min(int(block), self.npix))
        if self.per_value:  # blocks of whole pixels: a value's column is its index % 3
            self.block = max(3, self.block // 3 * 3)
        self.slack = float(slack)
        nblocks = -(-self.npix // self.block)
        self.proj = np.empty((self.ncol, self.npix), np.float32)
        self.peaks = np.empty(nblocks, np.float32)
        self.extremes = np.zeros((f, 2), np.float64)  # each slot's frame min and max
        # Float frames: whether each slot holds a value whose product with the smallest
        # non-zero weight is below 2**-126 (subnormal: its error absolute, not relative).
        self.float_frames = _storage(plan.dtype).kind == "f"
        self.tiny = np.zeros(f, bool)
        wmin = float(np.abs(self.w32[self.w32 != 0]).min(initial=np.inf))
        limit = 2.0 ** -126 / wmin
        # compared in float32: rounded up, or every non-zero value where it overflows
        self.tiny_below = np.float32(limit) if limit < 3e38 else np.float32(np.inf)
        if float(self.tiny_below) < limit:
            self.tiny_below = np.nextafter(self.tiny_below, np.float32(np.inf))
        threads = _threads()
        self.sc_shift = np.empty((threads, self.block), np.float32)
        self.sc_best = np.empty((threads, 6, self.block), np.float32)
        self.sc_flags = np.empty((threads, self.block), np.uint8)
        self.sc_diff = np.empty((threads, f * self.block if self.diff_order > 1 else 1),
                                np.float32)
        self.counts = np.zeros(2, np.int64)

    @property
    def exact(self) -> int:
        return int(self.counts[0])

    @property
    def peak_candidates(self) -> int:
        return int(self.counts[1])

    def note(self, x, slot: int) -> None:
        """Frame ``x`` (flat) goes to ring row ``slot``: keep its extremes."""
        self.extremes[slot] = (x.min(), x.max())
        if self.float_frames:
            self.tiny[slot] = _kernels().count_tiny(x, self.tiny_below) > 0

    def _bounds(self):
        """``(c, err, subnormal)``: the float32 ``B`` errs by at most ``c * |B|`` (a bound
        relative to each value), and the float32 projection ``offset + B`` by at most
        ``err``; unless ``subnormal``.

        Every shifted value ``v`` is exact, so a product errs only by its
        weight's relative error and two roundings (float32 here, float64 in
        the reference), which the maximum keeps; ``|B|`` is at most ``V *
        wmax``, ``V`` the window's largest frame maximum less its smallest
        minimum (or one frame value, unshifted). ``invert_color``'s offset
        adds two roundings and its own float32 error. ``subnormal``: float
        frames hold values small enough for a product to fall below float32's
        normal range (2**-126), where errors are absolute, not relative (and
        the stretch factor may not fit float32): every value must then be
        decided in float64.
        """
        c = (self.wrel + U32 * (1 + self.wrel) + U64) / (1 - U64) * (1 + 1e-6)
        low, high = self.extremes[:, 0].min(), self.extremes[:, 1].max()
        # a d-th difference is a sum of 2**d values with signs
        bmax = max((high - low) * 2 ** self.diff_order, abs(high), abs(low)) * self.wmax
        subnormal = bool(self.tiny.any())
        err = c * bmax
        if self.offset != 0.0 or self.off_err:
            err += self.off_err + (U32 + U64) * (abs(self.offset) + bmax * (1 + c))
        return c, err * (1 + 1e-6) + 1e-300, subnormal

    def image(self, ring, start, lo, hi, scale=None) -> np.ndarray:
        """The window's 8-bit image as a new flat array (value p, column c at ``p * ncol + c``).

        Parameters
        ----------
        ring : ndarray, shape (F, P)
            The window's frames, row ``start`` the oldest.
        lo, hi : ndarray, shape (P,)
            The window's two middle order statistics (``subtract_median``).
        scale : float, optional
            The fixed stretch factor (``normalize='global'``); default: 255
            over the image's exact peak.
        """
        nc = _kernels()
        args = (ring, start, lo, hi, self.shift_mode, self.diff_order)
        nc.shifted_brute(*args, self.w32, self.per_value, self.add_first, self.proj,
                         self.peaks, self.block, self.sc_shift, self.sc_best, self.sc_diff)
        c, err, subnormal = self._bounds()
        if scale is None:
            # Only values within 3 c'' |top| of the float32 top can hold the exact peak
            # (c'' = c / (1 - c); the module notes of kernels.numba.color_shifted).
            top = float(self.peaks.max())
            if top == 0.0 and not subnormal:
                # A float32 B of 0 is an exact 0 (the bound is relative), and the
                # others are below 0: the common case of invert_color, where a
                # weight of 0 (the ramp's blue, the fade) makes every B of a column 0.
                best = 0.0
            else:
                bound = -np.inf if subnormal else top - 3 * c / (1 - c) * abs(top)
                below = np.float32(bound)
                if float(below) > bound:  # float32 rounding must not lift it
                    below = np.nextafter(below, np.float32(-np.inf))
                best, found = nc.shifted_peak(self.proj, self.peaks, below, self.block, *args,
                                              self.w64, self.per_value, self.add_first)
                self.counts[1] += found
            peak = self.offset - (-best)  # offset - min, as the reference
            scale = 255.0 / peak if peak != 0 else 1.0
        margin = abs(scale) * err * (1 + 1e-6) + _STRETCH_SLACK + self.slack
        f32 = np.finfo(np.float32)
        if subnormal or not f32.tiny <= abs(scale) < f32.max:
            # float32 cannot decide these values (or hold the scale): a factor of 0 and a
            # margin of 2 flag every value for the float64 recomputation
            scale32, margin = np.float32(0.0), 2.0
        else:
            scale32 = np.float32(scale)
        out = np.empty(self.proj.size, np.uint8)
        nc.shifted_stretch(self.proj, self.offset, scale32,
                           np.float32(margin * (1 + 4 * U32)), scale, *args, self.w64,
                           self.per_value, self.add_first, self.block, out, self.counts,
                           self.sc_flags)
        return out


def make_color(plan, method: str = "auto", records_block: int = 1024,
               brute_block: int = 8192):
    """The certified color state of weights alone (:func:`color_method`), or None.

    Each method has its own block size: brute force streams F rows of the
    ring per block and gains from long rows, the records keep per-pixel
    lists that should stay in cache. (The shifted path's state,
    :class:`ShiftedColor`, needs its owner's ring and median.)
    """
    chosen = color_method(plan, method)
    if chosen not in ("records", "brute"):
        return None
    if chosen == "records":
        return RecordsColor(plan, records_block)
    return BruteColor(plan, brute_block)
