"""``flowtrace demo``: trace a built-in synthetic movie, end to end."""

from __future__ import annotations

import numpy as np

from .api import flowtrace
from .io.png import encode_png
from .io.writers import prepare_out_dir, write_atomically
from .synthetic import synthetic_movie

DEMO_FRAMES = 240
DEMO_SIZE = 256
DEMO_WINDOW = 30


def run_demo(out_dir="demo_output", *, n_frames: int = DEMO_FRAMES, size: int = DEMO_SIZE,
             window: int = DEMO_WINDOW, **options) -> dict:
    """Write a synthetic movie, trace it, and save a side-by-side preview.

    Layout of ``out_dir``: ``frames/`` (the movie as 8-bit TIFFs),
    ``pathlines/`` (one PNG per window of ``window`` frames, by default
    with the still background subtracted) and ``preview.png`` (a raw frame
    beside its pathline image).

    Parameters
    ----------
    out_dir : path-like
    n_frames, size, window : int
        Frames of the movie, side of its square frames, frames per window.
    **options
        Any option of :func:`flowtrace_gpu.flowtrace`; default
        ``subtract_median=True``.

    Returns
    -------
    dict with the paths written and the counts.

    Examples
    --------
    >>> import tempfile
    >>> result = run_demo(tempfile.mkdtemp(), n_frames=12, size=32, window=4, progress=False)
    >>> result["n_images"]
    9
    """
    import tifffile

    out = prepare_out_dir(out_dir)
    frames_dir = prepare_out_dir(out / "frames")
    movie = synthetic_movie(n_frames, (size, size), seed=0)
    for i, frame in enumerate(movie):
        tifffile.imwrite(frames_dir / f"frame{i:04d}.tif", frame)
    options.setdefault("subtract_median", True)
    images = flowtrace(frames_dir, window, out / "pathlines", **options)

    import imageio.v3 as iio

    first = iio.imread(images[0])
    raw = movie[0]
    if first.ndim == 3:
        raw = np.repeat(raw[..., None], 3, axis=2)
    gap = np.full((raw.shape[0], 8) + raw.shape[2:], 255, dtype=np.uint8)
    preview = np.concatenate([raw, gap, first], axis=1)
    write_atomically(out / "preview.png", encode_png(preview, level=6))
    return {"frames": frames_dir, "pathlines": out / "pathlines", "preview": out / "preview.png",
            "n_frames": len(movie), "n_images": len(images)}
