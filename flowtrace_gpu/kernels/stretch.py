"""Projection (float64) -> output image: the plan's scaling, xp-generic."""

from __future__ import annotations


def finalize(proj, plan, xp):
    """Turn a float64 projection into the image the plan asks for.

    ``plan.scaling``: 'frame' stretches each image on its own (the
    original); 'fixed' scales every image by the same ``plan.peak``
    (``normalize='global'``); 'none' rounds the raw values into the input
    dtype, clipped to its range; 'float' returns the projection itself.
    """
    if plan.scaling == "frame":
        return stretch_to_uint8(proj, xp)
    if plan.scaling == "fixed":
        return scale_to_uint8(proj, plan.peak, xp)
    if plan.scaling == "none":
        return to_dtype(proj, plan.out_dtype, xp)
    return proj + 0.0  # -0.0 -> 0.0, as to_dtype: backends agree bit for bit


def scale_to_uint8(proj, peak, xp, out=None):
    """``floor(clip(v * (255 / peak), 0, 255) + 0.5)``; peak 0 means no scaling.

    The CuPy backend's stretch kernel is this function written in CUDA, and
    its NumPy twin calls it (``backends/cupy/kernels.py``).
    """
    scaled = proj * (255.0 / peak if peak != 0 else 1.0)
    return _round_uint8(scaled, xp, out)


def to_dtype(proj, dtype, xp):
    """Raw projection values as ``dtype``: ints rounded half up and clipped to the dtype's range."""
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        # + 0.0 turns -0.0 into 0.0: backends that take max/min in another
        # order then agree bit for bit.
        return (proj + 0.0).astype(dtype)
    info = np.iinfo(dtype)
    return xp.floor(xp.clip(proj, info.min, info.max) + 0.5).astype(dtype)


def _round_uint8(scaled, xp, out=None):
    xp.clip(scaled, 0.0, 255.0, out=scaled)
    scaled += 0.5
    # Non-negative, so truncation is floor.
    if out is None:
        return scaled.astype(xp.uint8)
    out[...] = scaled
    return out


def stretch_to_uint8(proj, xp, out=None):
    """Scale so the image's largest value becomes 255, then round to uint8.

    Every value v becomes ``floor(clip(v * (255 / M), 0, 255) + 0.5)`` with M
    the largest value of the image over all channels; M == 0 leaves values
    unscaled. This is ``scipy.misc.toimage(p, cmin=0, cmax=M)``, bit for bit.

    Parameters
    ----------
    proj : array of float64
        A projection from :func:`kernels.window.trace_window`.
    xp : module
        Array namespace of ``proj``.
    out : array of uint8, optional
        Where to write the image.
    """
    peak = proj.max()
    # where() keeps the scale on the device: no host round trip for the peak.
    scale = 255.0 / xp.where(peak == 0, 255.0, peak)
    return _round_uint8(proj * scale, xp, out)
