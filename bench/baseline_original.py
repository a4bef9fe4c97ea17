"""The original flowtrace's algorithm, as a yardstick (serial, use_parallel=False).

Per output frame: roll a float64 (H, W, F) window by one frame, read the next
frame into it, copy, optionally subtract the per-pixel np.median, optionally
tint frame j by the time ramp (``color_series``: the stack times the (F, 3)
colors, broadcast to (H, W, F, 3)), take the max, stretch to 8 bits and
save with Pillow's default PNG settings -- what ``sliding_zproj_internal``
does, with tifffile and Pillow standing in for the long-gone ``scipy.misc``
reader and ``toimage``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _ramp(k):
    """The original's cmap1D((90, 10, 250), (255, 153, 0), k) / 255, (k, 3)."""
    start = np.array([90, 10, 250]) / 255.0
    end = np.array([255, 153, 0]) / 255.0
    return np.stack([np.linspace(start[c], end[c], k) for c in range(3)], axis=1) / 255.0


def run_original(files, frames_to_merge, out_dir, subtract_median=False, color_series=False,
                 max_outputs=None):
    """Trace ``files`` the original's way; returns the number of images written."""
    import tifffile
    from PIL import Image

    out_dir = Path(out_dir)
    first = tifffile.imread(files[0])
    stack = np.zeros(first.shape + (frames_to_merge,))
    n_out = len(files) - frames_to_merge
    if max_outputs is not None:
        n_out = min(n_out, max_outputs)
    for ii in range(n_out):
        if ii == 0:
            for jj in range(frames_to_merge):
                stack[..., jj] = tifffile.imread(files[jj])
        else:
            stack = np.roll(stack, -1, axis=2)
            stack[..., -1] = tifffile.imread(files[ii + frames_to_merge])
        stack2 = stack.copy()
        if subtract_median:
            stack2 = stack2 - np.median(stack2, axis=-1)[..., np.newaxis]
        if color_series:
            proj = (stack2[..., np.newaxis] * _ramp(frames_to_merge)).max(axis=-2)
        else:
            proj = stack2.max(axis=-1)
        peak = proj.max()
        scaled = proj * (255.0 / peak) if peak != 0 else proj
        image = (np.clip(scaled, 0, 255) + 0.5).astype(np.uint8)
        name = Path(files[ii]).stem + f"_streamlines_frames{frames_to_merge}.png"
        Image.fromarray(image).save(out_dir / name)
    return n_out
