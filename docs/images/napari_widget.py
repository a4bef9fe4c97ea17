"""Make docs/images/napari_widget.png: the Pathlines widget docked, with a color preview.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/images/napari_widget.py

A synthetic recording (tracers in a cellular flow, written as a TIFF stack)
opened through the plugin, F = 30, ``subtract_median`` and ``color_series``,
at frame 80; the whole window grabbed (``viewer.screenshot(canvas_only=False)``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import napari
import tifffile
from qtpy.QtWidgets import QApplication

from flowtrace_gpu.synthetic import synthetic_movie

OUT = Path(__file__).resolve().parent / "napari_widget.png"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tracers.tif"
        tifffile.imwrite(path, synthetic_movie(120, (360, 480), seed=11))
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1400, 860)
        viewer.open(str(path), plugin="flowtrace-gpu")
        _, widget = viewer.window.add_plugin_dock_widget("flowtrace-gpu", "Pathlines")
        widget.frames_to_merge.value = 30
        widget.subtract_median.value = True
        widget.color_series.value = True
        viewer.dims.set_current_step(0, 80)
        app = QApplication.instance()
        deadline = time.monotonic() + 300
        while not widget.settled and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        if not widget.settled:
            print("the preview did not settle", file=sys.stderr)
            return 1
        viewer.layers.selection.active = viewer.layers["pathlines"]
        viewer.reset_view()
        for _ in range(20):  # let the canvas draw
            app.processEvents()
            time.sleep(0.02)
        iio.imwrite(OUT, viewer.screenshot(canvas_only=False, flash=False))
        viewer.close()
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
