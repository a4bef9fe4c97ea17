"""Projection (float) -> 8-bit image, the original's per-image stretch."""

from __future__ import annotations


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
    scaled = proj * scale
    xp.clip(scaled, 0.0, 255.0, out=scaled)
    scaled += 0.5
    # Non-negative, so truncation is floor.
    if out is None:
        return scaled.astype(xp.uint8)
    out[...] = scaled
    return out
