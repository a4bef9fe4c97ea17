"""``flowtrace demo``: trace a built-in synthetic movie, end to end."""

from __future__ import annotations

import numpy as np

from .api import flowtrace
from .io.png import encode_png
from .io.writers import prepare_out_dir, write_atomically
from .synthetic import synthetic_movie

DEMO_FRAMES = 240
DEMO_SHAPE = (256, 256)
DEMO_WINDOW = 30


def run_demo(out_dir="demo_output", *, backend="auto", progress=None, **options) -> dict:
    """Write a synthetic movie, trace it, and save a side-by-side preview.

    Layout of ``out_dir``: ``frames/`` (the movie as 8-bit TIFFs),
    ``pathlines/`` (one PNG per window of 30 frames, the still background
    subtracted) and ``preview.png`` (a raw frame beside its pathline image).

    Returns
    -------
    dict with the paths written and the counts.
    """
    import tifffile

    out = prepare_out_dir(out_dir)
    frames_dir = prepare_out_dir(out / "frames")
    movie = synthetic_movie(DEMO_FRAMES, DEMO_SHAPE, seed=0)
    for i, frame in enumerate(movie):
        tifffile.imwrite(frames_dir / f"frame{i:04d}.tif", frame)
    options.setdefault("subtract_median", True)
    images = flowtrace(frames_dir, DEMO_WINDOW, out / "pathlines", backend=backend,
                       progress=progress, **options)

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
