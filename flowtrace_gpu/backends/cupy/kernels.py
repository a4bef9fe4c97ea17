"""Internal to the cupy backend: the fused CUDA kernels and their NumPy twins.

Each kernel is a CUDA source (``_<op>_src(...)``), a memoized builder that
compiles it once per specialization (``_get_<op>_kernel(...)``, in the style
of ``cupyx.scipy.ndimage``), and a NumPy twin that does the same IEEE
operations in the same order. :class:`CudaKernels` launches the kernels;
:class:`HostKernels` runs the twins, for the NumPy stand-in of the backend.
Tests check the twins against the reference (``kernels.window``,
``kernels.stretch``) and the CUDA sources, compiled as C++, against the
twins, bit for bit.

``__dmul_rn`` keeps NVRTC from fusing a product into an FMA, which would
round differently from NumPy. Nothing here imports CuPy until a builder is
called.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ...kernels.colors import WeightMode
from ...kernels.stretch import scale_to_uint8

# --------------------------------------------------------------------------
# Stretch: float64 projection + its peak -> uint8 image
# --------------------------------------------------------------------------

# kernels.stretch.scale_to_uint8, operation for operation:
#   scale = 255.0 / peak if peak != 0 else 1.0   -- 255 / 255 is exactly 1.0
#   v = clip(x * scale, 0, 255)
#   y = uint8(v + 0.5)                          -- non-negative: truncation is floor
def _stretch_src(per_image: bool) -> str:
    # per_image: images of ``size`` elements each, one peak per image (a batch).
    peak = "peak[i / size]" if per_image else "peak[0]"
    return f"""
const double p = {peak};
const double scale = 255.0 / (p == 0.0 ? 255.0 : p);
double v = __dmul_rn(x, scale);
v = v < 0.0 ? 0.0 : (v > 255.0 ? 255.0 : v);
y = (unsigned char)(v + 0.5);
"""


_STRETCH_SRC = _stretch_src(False)


@functools.cache
def _get_stretch_kernel(per_image: bool = False):
    """The stretch kernel (float64 in, uint8 out): one peak, or one per image of a batch."""
    import cupy

    if per_image:
        return cupy.ElementwiseKernel("float64 x, raw float64 peak, int64 size", "uint8 y",
                                      _stretch_src(True), "flowtrace_stretch_images")
    return cupy.ElementwiseKernel("float64 x, raw float64 peak", "uint8 y", _STRETCH_SRC,
                                  "flowtrace_stretch")


def stretch_twin(x, peak, out):
    """Twin of the stretch kernel: the reference :func:`scale_to_uint8` itself.

    ``peak`` is a one-element array, as the kernel reads it: the image's own
    maximum (``normalize='frame'``) or the run's (``'global'``).
    """
    return scale_to_uint8(x, float(np.asarray(peak).reshape(-1)[0]), np, out)


# --------------------------------------------------------------------------
# Extreme: per-pixel max (or offset - min) of the raw frames
# --------------------------------------------------------------------------

def _extreme_src(invert: bool) -> str:
    better, result = ("<", "offset - (double)m") if invert else (">", "(double)m")
    return f"""
T m = src[i];
for (int j = 1; j < count; ++j) {{
    const T v = src[(ptrdiff_t)j * plane + i];
    if (v {better} m) m = v;
}}
y = {result};
"""


@functools.cache
def _get_extreme_kernel(invert: bool):
    """Per-pixel max (or ``offset - min``) over ``count`` planes, in the input dtype.

    Max commutes with the exact, monotone cast to float64, so the ring's
    raw frames are reduced without a float copy and in any slot order.
    """
    import cupy

    return cupy.ElementwiseKernel(
        "raw T src, int64 plane, int32 count, float64 offset", "float64 y",
        _extreme_src(invert), "flowtrace_min" if invert else "flowtrace_max")


def extreme_twin(src, count, invert, offset, out):
    """Twin of the extreme kernel over ``src[:count]`` (planes of ``out.size``)."""
    m = src[0]
    for j in range(1, count):
        v = src[j]
        m = np.where(v < m if invert else v > m, v, m)
    m = m.astype(np.float64)
    out[...] = offset - m if invert else m
    return out


# --------------------------------------------------------------------------
# Weighted: color_series / fade_tails, max_j frame_j * w[j] in window order
# --------------------------------------------------------------------------

def _weighted_src(mode: WeightMode, invert: bool) -> str:
    # Output element i is channel c of source element p: a gray pixel feeds
    # all three channels of its output pixel (TINT); otherwise p == i.
    mode = WeightMode(mode)
    pixel = "i / 3" if mode == WeightMode.TINT else "i"
    channel, nw = ("0", "1") if mode == WeightMode.SCALAR else ("(int)(i % 3)", "3")
    better, result = ("<", "offset - m") if invert else (">", "m")
    return f"""
const ptrdiff_t p = {pixel};
const int c = {channel};
int slot = start;
double m = __dmul_rn((double)src[(ptrdiff_t)slot * plane + p], w[c]);
for (int j = 1; j < count; ++j) {{
    slot = (slot + 1 == nslots) ? 0 : slot + 1;
    const double v = __dmul_rn((double)src[(ptrdiff_t)slot * plane + p], w[{nw} * j + c]);
    if (v {better} m) m = v;
}}
y = {result};
"""


@functools.cache
def _get_weighted_kernel(mode: WeightMode, invert: bool):
    """The weighted max (or ``offset - min``) for one :class:`WeightMode` but NONE.

    One pass over the frames, reading the ring's slots in window order: no
    (K, H, W, 3) float64 temporary.
    """
    import cupy

    mode = WeightMode(mode)
    if mode == WeightMode.NONE:
        raise ValueError("WeightMode.NONE has no weighted kernel: use the extreme kernel")
    return cupy.ElementwiseKernel(
        "raw T src, raw float64 w, int64 plane, int32 count, int32 start, int32 nslots, "
        "float64 offset", "float64 y", _weighted_src(mode, invert),
        f"flowtrace_weighted_{mode.name.lower()}_{'min' if invert else 'max'}")


def weighted_twin(src, w, start, count, mode, invert, offset, out):
    """Twin of the weighted kernel: slots ``start, start+1, ...`` (mod ``len(src)``)."""
    nslots = src.shape[0]
    tint = mode == WeightMode.TINT

    def weighted(slot, j):
        x = src[slot].astype(np.float64)
        return (x[..., None] if tint else x) * w[j]

    slot = start
    m = weighted(slot, 0)
    for j in range(1, count):
        slot = 0 if slot + 1 == nslots else slot + 1
        v = weighted(slot, j)
        m = np.where(v < m if invert else v > m, v, m)
    out[...] = offset - m if invert else m
    return out


# --------------------------------------------------------------------------
# Median: per-pixel median of integer frames, by radix select
# --------------------------------------------------------------------------

def has_median_kernel(dtype) -> bool:
    """Whether the median kernel takes frames of ``dtype``: integers of up to 32 bits.

    Their values, and the mean of two of them, are exact in float64, so the
    kernel's median equals ``numpy.median`` of the frames cast to float64.
    Other dtypes take ``xp.median`` (a sort on the device).
    """
    dtype = np.dtype(dtype)
    return dtype.kind in "ui" and dtype.itemsize <= 4


def _median_src(dtype) -> str:
    # Keys are the values shifted to unsigned (signed types by 2**(bits-1)),
    # so unsigned order is value order. Radix select, most significant bit
    # first: r ends as the largest key with fewer than k + 1 keys below it,
    # the k-th smallest. One pass over the window per bit, none sorted, no
    # scratch; the slot order does not matter.
    dtype = np.dtype(dtype)
    bits = 8 * dtype.itemsize
    bias = 1 << (bits - 1) if dtype.kind == "i" else 0
    key = f"(unsigned int)((long long)src[(ptrdiff_t)j * plane + i] + {bias}LL)"
    return f"""
const int k = (count - 1) / 2;
unsigned int r = 0;
for (int b = {bits - 1}; b >= 0; --b) {{
    const unsigned int c = r | (1u << b);
    int below = 0;
    for (int j = 0; j < count; ++j) below += {key} < c;
    if (below <= k) r = c;
}}
unsigned int hi = r;
if ((count & 1) == 0) {{  // the upper middle: r again, or the next larger key
    int at_most = 0;
    unsigned int next = 0xFFFFFFFFu;
    for (int j = 0; j < count; ++j) {{
        const unsigned int v = {key};
        at_most += v <= r;
        if (v > r && v < next) next = v;
    }}
    if (at_most <= count / 2) hi = next;
}}
y = ((double)((long long)r - {bias}LL) + (double)((long long)hi - {bias}LL)) * 0.5;
"""


@functools.cache
def _get_median_kernel(dtype):
    """Per-pixel median of ``count`` integer planes, as float64 (one build per dtype)."""
    import cupy

    dtype = np.dtype(dtype)
    if not has_median_kernel(dtype):
        raise ValueError(f"the median kernel takes integers of up to 32 bits, not {dtype}")
    return cupy.ElementwiseKernel("raw T src, int64 plane, int32 count", "float64 y",
                                  _median_src(dtype), f"flowtrace_median_{dtype.name}")


def median_twin(src, count, out):
    """Twin of the median kernel over ``src[:count]``: ``numpy.median`` in float64."""
    out[...] = np.median(src[:count].astype(np.float64), axis=0)
    return out


# --------------------------------------------------------------------------
# Launchers: the same calls on a device and on the host
# --------------------------------------------------------------------------
#
# The ``*_windows`` calls project the n consecutive windows of a batch at
# once: ``src`` holds consecutive frames (at least count + n - 1) and ``out``
# n planes. Each kernel reads frame j of output element i at ``src[j * plane
# + i]``; with i running over n planes, element i of plane b reads frame
# b + j: window b. The same kernels, launched once per batch.

class CudaKernels:
    """The fused kernels on a CUDA device (flat views: linear indexing only)."""

    @staticmethod
    def stretch_windows(proj, peaks, out):
        """``out[b] = stretch(proj[b], peaks[b])`` for each image b of a batch."""
        _get_stretch_kernel(True)(proj.reshape(-1), peaks.reshape(-1), out[0].size,
                                  out.reshape(-1))
        return out

    @staticmethod
    def extreme_windows(src, count, invert, offset, out):
        _get_extreme_kernel(bool(invert))(src.reshape(-1), out[0].size, count, float(offset),
                                          out.reshape(-1))
        return out

    @staticmethod
    def weighted_windows(src, w, count, mode, invert, offset, out):
        plane = math.prod(src.shape[1:])
        _get_weighted_kernel(WeightMode(mode), bool(invert))(
            src.reshape(-1), w.reshape(-1), plane, count, 0, src.shape[0], float(offset),
            out.reshape(-1))
        return out

    @staticmethod
    def median_windows(src, count, out):
        _get_median_kernel(src.dtype)(src.reshape(-1), out[0].size, count, out.reshape(-1))
        return out

    @staticmethod
    def stretch(proj, peak, out):
        _get_stretch_kernel()(proj.reshape(-1), peak.reshape(-1), out.reshape(-1))
        return out

    @staticmethod
    def extreme(src, count, invert, offset, out):
        plane = out.size
        _get_extreme_kernel(bool(invert))(src.reshape(-1), plane, count, float(offset),
                                          out.reshape(-1))
        return out

    @staticmethod
    def weighted(src, w, start, count, mode, invert, offset, out):
        plane = math.prod(src.shape[1:])
        _get_weighted_kernel(WeightMode(mode), bool(invert))(
            src.reshape(-1), w.reshape(-1), plane, count, start, src.shape[0], float(offset),
            out.reshape(-1))
        return out

    @staticmethod
    def median(src, count, out):
        _get_median_kernel(src.dtype)(src.reshape(-1), out.size, count, out.reshape(-1))
        return out


class HostKernels:
    """The same kernels as NumPy twins, for the stand-in (a batch: window by window)."""

    stretch = staticmethod(stretch_twin)
    extreme = staticmethod(extreme_twin)
    weighted = staticmethod(weighted_twin)
    median = staticmethod(median_twin)

    @staticmethod
    def stretch_windows(proj, peaks, out):
        for b in range(len(out)):
            stretch_twin(proj[b], peaks[b:b + 1], out[b])
        return out

    @staticmethod
    def extreme_windows(src, count, invert, offset, out):
        for b in range(len(out)):
            extreme_twin(src[b:b + count], count, invert, offset, out[b])
        return out

    @staticmethod
    def weighted_windows(src, w, count, mode, invert, offset, out):
        for b in range(len(out)):
            weighted_twin(src[b:b + count], w, 0, count, mode, invert, offset, out[b])
        return out

    @staticmethod
    def median_windows(src, count, out):
        for b in range(len(out)):
            median_twin(src[b:b + count], count, out[b])
        return out
