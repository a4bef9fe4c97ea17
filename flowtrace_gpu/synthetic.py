"""Seeded synthetic movies: tracer particles in a known analytic flow, and the demo.

:func:`synthetic_movie` feeds ``flowtrace demo`` (:func:`run_demo`), the
tests and the benchmarks, so every run of them sees the same pixels without
shipping data.
"""

from __future__ import annotations

import io

import numpy as np

from .api import flowtrace
from .io.own_files import write_atomically
from .io.png import encode_png
from .io.writers import prepare_out_dir


def cellular_velocity(x, y, size, cells=2, speed=1.0):
    """Steady cellular (Taylor-Green) flow on a square of side ``size``.

    Returns (u, v) in pixels per frame; streamlines are closed loops, one
    vortex per cell, alternating in sense.
    """
    k = np.pi * cells / size
    u = -speed * np.sin(k * x) * np.cos(k * y)
    v = speed * np.cos(k * x) * np.sin(k * y)
    return u, v


def synthetic_movie(n_frames=240, shape=(256, 256), n_particles=None, *, seed=0,
                    cells=2, speed=None, spot_sigma=1.2, background=18.0, noise=4.0,
                    dtype=np.uint8):
    """Render tracer particles advected by a cellular flow.

    Parameters
    ----------
    n_frames : int
    shape : (int, int)
        Frame height and width in pixels.
    n_particles : int, optional
        Default: one per 200 pixels.
    seed : int
        Seeds positions and camera noise: the same seed gives the same movie.
    cells : int
        Vortex cells across the frame.
    speed : float, optional
        Peak speed in pixels per frame; default 1/150 of the frame size.
    spot_sigma : float
        Gaussian radius of a particle's image, in pixels.
    background, noise : float
        A still, uneven background level and the camera's noise (8-bit units).
    dtype : numpy dtype
        uint8 or uint16 (values scaled to 12 bits, as many cameras store).

    Returns
    -------
    numpy.ndarray, shape (n_frames, H, W)
    """
    height, width = shape
    size = float(max(height, width))
    rng = np.random.default_rng(seed)
    n = n_particles if n_particles is not None else max(1, height * width // 200)
    speed = speed if speed is not None else size / 150.0
    x = rng.uniform(0, width, n)
    y = rng.uniform(0, height, n)
    brightness = rng.uniform(0.6, 1.0, n)

    # An uneven, still background: what subtract_median removes.
    yy, xx = np.mgrid[0:height, 0:width]
    still = background * (1 + 0.5 * np.sin(xx / width * 3.1) * np.cos(yy / height * 2.3))

    offsets = np.arange(-3, 4)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    dy, dx = dy.ravel(), dx.ravel()
    peak = 220.0 if np.dtype(dtype) == np.uint8 else 4000.0
    scale = 1.0 if np.dtype(dtype) == np.uint8 else 4000.0 / 255.0
    movie = np.empty((n_frames, height, width), dtype=dtype)
    for t in range(n_frames):
        ix = np.floor(x).astype(np.int64)[:, None] + dx
        iy = np.floor(y).astype(np.int64)[:, None] + dy
        fx = (x - np.floor(x))[:, None]
        fy = (y - np.floor(y))[:, None]
        weight = brightness[:, None] * np.exp(-((dx - fx) ** 2 + (dy - fy) ** 2) / (2 * spot_sigma**2))
        inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
        spots = np.bincount((iy * width + ix)[inside], weight[inside], minlength=height * width)
        frame = still * scale + peak * spots.reshape(height, width)
        frame += rng.normal(0.0, noise * scale, frame.shape)
        movie[t] = np.clip(frame, 0, np.iinfo(dtype).max).round()
        # Midpoint (RK2) step through the flow.
        u, v = cellular_velocity(x, y, size, cells, speed)
        u2, v2 = cellular_velocity(x + u / 2, y + v / 2, size, cells, speed)
        x = np.mod(x + u2, width)
        y = np.mod(y + v2, height)
    return movie


# ----------------------------------------------------------------- the demo

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
        buffer = io.BytesIO()  # written as every output is: never through a link
        tifffile.imwrite(buffer, frame)
        write_atomically(frames_dir / f"frame{i:04d}.tif", buffer.getvalue())
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
