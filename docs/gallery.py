"""Make the gallery: docs/gallery/*.png and docs/gallery.md (``make gallery``).

Each entry runs one ``flowtrace`` command line (through
:func:`flowtrace_gpu.cli.main`, as the shell would) into a temporary folder and
keeps a raw frame beside one pathline image. The real recordings come from
``../shared/real`` (see its README), only those whose licences allow showing
them here: the Phantom cine from the pims project's test data (BSD-3) and the
Photron samples shipped with pyMRAW (MIT). A recording that is absent is left
out of the page, with a note on stderr.

Run from the repository root: ``python docs/gallery.py``. Not run by CI: the
images are committed.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "gallery"
PAGE = ROOT / "docs" / "gallery.md"
REAL = "../shared/real"

#: (name, title, command with {out} for the output folder, source for the raw frame,
#:  what it shows, origin and licence)
ENTRIES = [
    ("demo", "The demo movie",
     "flowtrace demo {out}", None,
     "Tracers in a seeded synthetic cellular flow, 30-frame windows, the still background "
     "subtracted.", "made by `flowtrace_gpu.synthetic`"),
    ("demo_color", "The demo movie, colored by time",
     "flowtrace demo {out} --color-series", None,
     "The same movie, each frame tinted by its time in the window: purple (oldest) to "
     "orange (newest).", "made by `flowtrace_gpu.synthetic`"),
    ("cine_bubble", "A bubble growing on a needle (Phantom .cine)",
     f"flowtrace {REAL}/cine_781.cine 15 {{out}} --invert-color",
     f"{REAL}/cine_781.cine",
     "A 90,000 fps shadowgraph, 256×256, 12 significant bits in 16-bit words: a dark "
     "object on a light ground, so `--invert-color` (with the file's 12 bits: 4095 − min); "
     "the bubble's growth over all 15 frames in one window.", "test data of the pims project (BSD-3)"),
    ("mraw_ball", "A falling ball (Photron .mraw, packed 12-bit)",
     f"flowtrace {REAL}/photron/ball_12bit.cihx 15 {{out}} --invert-color",
     f"{REAL}/photron/ball_12bit.cihx",
     "30,000 fps, 384×384, packed 12-bit (Nova S16, XML `.cihx`): the ball's path over 15 "
     "frames, inverted (dark on light).", "sample shipped with pyMRAW (MIT)"),
    ("mraw_sa_z", "A 16-bit Photron SA-Z recording (.mraw, text .cih)",
     f"flowtrace {REAL}/photron/sample_60k_16bit.cih 12 {{out}} --normalize global",
     f"{REAL}/photron/sample_60k_16bit.cih",
     "60,000 fps, 896×368, 16-bit: the maximum over all 12 frames, one scale for the run.",
     "sample shipped with pyMRAW (MIT)"),
]


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """An image as 8-bit RGB for the side-by-side picture (stretched to its range)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = image.astype(np.float64)
        lo, hi = float(image.min()), float(image.max())
        image = ((image - lo) * (255.0 / (hi - lo) if hi > lo else 0.0) + 0.5).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 8) -> np.ndarray:
    left, right = to_rgb8(left), to_rgb8(right)
    height = max(left.shape[0], right.shape[0])
    canvas = np.full((height, left.shape[1] + gap + right.shape[1], 3), 255, np.uint8)
    canvas[:left.shape[0], :left.shape[1]] = left
    canvas[:right.shape[0], left.shape[1] + gap:] = right
    return canvas


def first_frame(source: str | None, out: Path) -> np.ndarray:
    """The raw frame shown on the left: the recording's first, or the demo's."""
    if source is None:
        import tifffile

        return tifffile.imread(sorted((out / "frames").glob("*.tif"))[0])
    from flowtrace_gpu.io.formats import open_source

    src = open_source(ROOT / source)
    try:
        return np.asarray(next(src.frames([0])))
    finally:
        getattr(src, "close", lambda: None)()


def make(entry, work: Path) -> str | None:
    """Run one entry's command; write its PNG; return its Markdown, or None if absent."""
    import imageio.v3 as iio

    from flowtrace_gpu.cli import main as flowtrace_main
    from flowtrace_gpu.io.png import encode_png

    name, title, command, source, what, origin = entry
    if source is not None and not (ROOT / source).exists():
        print(f"gallery: {source} is absent; {name} left out", file=sys.stderr)
        return None
    out = work / name
    argv = shlex.split(command.format(out=out))[1:]
    status = flowtrace_main([*argv, "--quiet"])
    if status != 0:
        raise SystemExit(f"gallery: {command} exited with {status}")
    images = sorted((out / "pathlines" if source is None else out).glob("*_streamlines_*.png"))
    picture = side_by_side(first_frame(source, out), iio.imread(images[len(images) // 2]))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.png").write_bytes(encode_png(picture, 9))
    shown = command.format(out=f"gallery_{name}")
    return (f"## {title}\n\n![{title}](gallery/{name}.png)\n\n{what} Left: the first raw "
            f"frame (stretched for display); right: a pathline image. Recording: {origin}.\n\n"
            f"```bash\n{shown}\n```\n")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="flowtrace-gallery-"))
    try:
        sections = [s for s in (make(e, work) for e in ENTRIES) if s]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    PAGE.write_text(
        "# Gallery\n\n"
        "Each picture is made by `python docs/gallery.py` (`make gallery`), which runs the "
        "command shown below it from the repository root, with the real recordings in "
        "`../shared/real`. Only recordings whose licences allow it are shown.\n\n"
        + "\n".join(sections))
    print(f"wrote {PAGE} and {len(sections)} pictures in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
