"""The napari plugin: preview latency of the Pathlines widget, and opening a 1 GiB stack.

    python bench/bench_preview.py [--quick] [--size N] [--frames F] [--no-open]
    xvfb-run -a python bench/bench_preview.py      # the round trip needs a display

Latency of one preview update, the window slid by one frame each time (as a
step of the time slider), default options, CPU (numba), kernels compiled
first:

- ``compute``: :func:`~flowtrace_gpu.napari._widget.preview_image` alone
  (``flowtrace_array`` on the window) from frames in memory;
- ``lazy TIFF``: the same from the plugin's lazy layer of a TIFF stack (the
  new frame read from the file, the others from the reader's cache);
- ``round trip``: a real ``napari.Viewer`` with the widget docked (on the
  frames in memory, and on the lazy TIFF layer), from
  ``viewer.dims.set_current_step`` to the image in the ``pathlines`` layer
  (worker thread, Qt signals, layer update) while napari itself slices and
  paints the source layer's new frame; ``napari alone`` is that work of
  napari's for a slider step, the widget not docked. Needs a display.

Then the time and the added peak memory (VmHWM) of opening a 1 GiB TIFF
stack through the plugin in a fresh process, napari's ViewerModel already
holding a small layer (``--no-open`` skips it): the reader's imports (dask)
count, napari's own first-layer imports do not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from flowtrace_gpu.synthetic import synthetic_movie  # noqa: E402

from common import save, table  # noqa: E402

STEPS = 15


def _slide(fn, first: int, steps: int) -> list[float]:
    """Seconds of ``fn(t)`` for t = first, first + 1, ... (one warm-up call before)."""
    fn(first - 1)
    times = []
    for t in range(first, first + steps):
        start = time.perf_counter()
        fn(t)
        times.append(time.perf_counter() - start)
    return times


def compute_rows(movie, frames_to_merge, folder: Path) -> list[dict]:
    import tifffile

    from flowtrace_gpu.napari._reader import read_recording
    from flowtrace_gpu.napari._widget import preview_image

    f = frames_to_merge
    rows = []

    def row(name, times):
        rows.append({"path": name, "median ms": 1e3 * statistics.median(times),
                     "max ms": 1e3 * max(times), "updates": len(times)})

    row("compute (frames in memory)", _slide(
        lambda t: preview_image(movie, t - f + 1, t + 1, f, {}, "numba"), f, STEPS))
    tifffile.imwrite(folder / "movie.tif", movie)
    (lazy, _, _), = read_recording(str(folder / "movie.tif"))
    row("lazy TIFF layer (one new frame read)", _slide(
        lambda t: preview_image(lazy, t - f + 1, t + 1, f, {}, "numba"), f, STEPS))
    return rows


def round_trip_rows(movie, frames_to_merge, folder: Path) -> list[dict]:
    rows = []
    for name, path in (("frames in memory", None), ("lazy TIFF layer", folder / "movie.tif")):
        alone, times = _round_trip(movie, frames_to_merge, path)
        rows.append({"path": f"napari alone, {name} (slider step, 3 event rounds, no widget)",
                     "median ms": 1e3 * statistics.median(alone), "max ms": 1e3 * max(alone),
                     "updates": len(alone)})
        rows.append({"path": f"round trip, {name} (napari.Viewer, slider to layer)",
                     "median ms": 1e3 * statistics.median(times), "max ms": 1e3 * max(times),
                     "updates": len(times)})
    return rows


def _round_trip(movie, frames_to_merge, path) -> tuple[list[float], list[float]]:
    """(napari's own slider steps without the widget, slider-to-preview round trips)."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    try:
        if path is None:
            viewer.add_image(movie, name="movie")
        else:
            viewer.open(str(path), plugin="flowtrace-gpu")
        app = QApplication.instance()

        def step(t):  # napari's own work for a slider step: slicing, thumbnail, paint
            viewer.dims.set_current_step(0, t)
            for _ in range(3):
                app.processEvents()

        alone = _slide(step, 2, STEPS)
        _, widget = viewer.window.add_plugin_dock_widget("flowtrace-gpu", "Pathlines")
        widget.frames_to_merge.value = frames_to_merge

        def update(t):
            viewer.dims.set_current_step(0, t)
            while not widget.settled:
                app.processEvents()
                time.sleep(0.0005)
            if "window" not in widget.status.value:
                raise RuntimeError(widget.status.value)

        return alone, _slide(update, frames_to_merge, STEPS)
    finally:
        viewer.close()


_OPEN = """
import json, sys, time
from pathlib import Path
import numpy as np
import npe2
from napari.components import ViewerModel
npe2.PluginManager.instance().discover()
def status(key):
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
viewer = ViewerModel()
viewer.add_image(np.zeros((2, 2)))  # napari's own first-layer imports, not the plugin's
Path('/proc/self/clear_refs').write_text('5')
before = status('VmRSS:')
start = time.perf_counter()
layer, = viewer.open(sys.argv[1], plugin='flowtrace-gpu')
layer.data[viewer.dims.current_step[0]].compute()
print(json.dumps({'seconds': time.perf_counter() - start, 'added': status('VmHWM:') - before}))
"""


def open_row(folder: Path) -> dict:
    import tifffile

    n, side = 1024, 1024
    path = folder / "big.tif"
    tifffile.imwrite(path, shape=(n, side, side), dtype=np.uint8)
    with tifffile.TiffFile(path) as tif:
        offset = tif.series[0].dataoffset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        for first in range(0, n, 64):
            block = (np.arange(first, first + 64) % 251).astype(np.uint8)
            fh.write(np.broadcast_to(block[:, None, None], (64, side, side)).tobytes())
    out = subprocess.run([sys.executable, "-c", _OPEN, str(path)], capture_output=True, text=True,
                         check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return {"stack": f"{n} x {side}x{side} uint8 ({path.stat().st_size / 2**30:.2f} GiB)",
            "open s": got["seconds"], "added peak MiB": got["added"] / 2**20}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="256x256 frames, no 1 GiB stack")
    ap.add_argument("--size", type=int, default=None, help="frame side (default 1024: 1 MP)")
    ap.add_argument("--frames", type=int, default=30, help="frames_to_merge (default 30)")
    ap.add_argument("--no-open", action="store_true", help="skip the 1 GiB stack")
    args = ap.parse_args(argv)
    size = args.size or (256 if args.quick else 1024)
    f = args.frames
    movie = synthetic_movie(f + STEPS + 2, (size, size), seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        rows = compute_rows(movie, f, Path(tmp))
        import os

        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            rows += round_trip_rows(movie, f, Path(tmp))
        else:
            print("no display: the round trip is not measured (run under xvfb-run)")
        print(f"Preview update, {size}x{size} uint8, F={f}, default options, numba (CPU), "
              "window slid by one frame per update")
        print(table(rows, ["path", "median ms", "max ms", "updates"]))
        opened = None
        if not (args.quick or args.no_open):
            opened = open_row(Path(tmp))
            print("\nOpening a TIFF stack through the plugin (fresh process, napari ViewerModel)")
            print(table([opened], ["stack", "open s", "added peak MiB"]))
    path = save("bench_preview", {"size": size, "frames_to_merge": f, "preview": rows,
                                  "open": opened})
    print(f"\n{path}")


if __name__ == "__main__":
    main()
