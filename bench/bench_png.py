"""PNG encoders on a real pathline image: ms per frame and file size.

    python bench/bench_png.py [--quick]

Three images of the noisy synthetic movie (F = 30): the default image and
the subtract_median image (gray) and the color_series image (RGB, tinted
noise). Candidates:
Pillow at its default level 6 (the original), Pillow at level 1, and
flowtrace_gpu's own writer (filter 0 rows) deflated by zlib at level 1, by
zlib's Huffman-only strategy, stored (from the rows, and straight from the
pixels as the writer stores), by ISA-L at levels 0-1 (level 1 also as the
writer calls it, ``png.isal_stream``), by its own
Huffman-only coder (``flowtrace_gpu.io.huffman``), and as it chooses by
default. Every candidate is decoded back and checked pixel-equal.
"""

from __future__ import annotations

import argparse
import io
import sys
import zlib

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from flowtrace_gpu import flowtrace_array  # noqa: E402
from flowtrace_gpu.io import huffman, png  # noqa: E402
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import median_time, save, table  # noqa: E402


def pillow(level):
    from PIL import Image

    def encode(image):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG", compress_level=level)
        return buf.getvalue()
    return encode


def ours(compress):
    return lambda image: png.encode_png(image, compress=compress)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="256x256 instead of 1024x1024")
    args = ap.parse_args(argv)
    size = 256 if args.quick else 1024
    movie = synthetic_movie(31, (size, size), seed=1)
    rows = []
    for label, options in (("default (gray)", {}),
                           ("subtract_median (gray)", {"subtract_median": True}),
                           ("color_series (RGB)", {"color_series": True})):
        image = flowtrace_array(movie, 30, windows="sliding", **options)[0]
        rows += time_encoders(label, image)
    print(f"PNG encoders, one {size}x{size} 8-bit pathline image each (median of 7)")
    print(table(rows, ["image", "encoder", "ms_per_frame", "size_kB", "speedup_vs_original"]))
    print("wrote", save("png", {"size": size, "rows": rows}))


def huffman_only(rows):
    c = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_HUFFMAN_ONLY)
    return c.compress(rows) + c.flush()


def time_encoders(label, image):
    from PIL import Image

    candidates = {
        "Pillow level 6 (original)": pillow(6),
        "Pillow level 1": pillow(1),
        "flowtrace zlib level 1": ours(lambda b: zlib.compress(b, 1)),
        "flowtrace zlib Huffman only": ours(huffman_only),
        "flowtrace own Huffman only": ours(lambda b: huffman.huffman_zlib(b, adler32=png._adler32)),
    }
    # Stored blocks: built from the rows (the writer's former way), and
    # straight from the pixels, whole rows per block (png.stored_rows_zlib).
    candidates["flowtrace stored, rows then blocks"] = ours(png.stored_zlib)
    candidates["flowtrace stored from the pixels (level 0)"] = lambda im: png.encode_png(im, 0)
    if png._isal is not None:
        candidates["flowtrace ISA-L level 0"] = ours(lambda b: png._isal.compress(b, 0))
        candidates["flowtrace ISA-L level 1"] = ours(lambda b: png._isal.compress(b, 1))
        # What the writer calls: the same level 1, its first byte stored as history.
        candidates["flowtrace ISA-L level 1, png.isal_stream"] = ours(lambda b: png.isal_stream(b, 1))
        candidates["flowtrace default (stored, Huffman or ISA-L 1)"] = (
            lambda im: png.encode_png(im, 1))
    rows = []
    for name, encode in candidates.items():
        data = encode(image)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image), name
        seconds = median_time(lambda: encode(image), repeats=7)
        rows.append({"image": label, "encoder": name, "ms_per_frame": seconds * 1e3,
                     "size_kB": len(data) / 1e3})
    base = rows[0]["ms_per_frame"]
    for r in rows:
        r["speedup_vs_original"] = base / r["ms_per_frame"]
    return rows


if __name__ == "__main__":
    main()
