"""The ``Pathlines`` widget: a live pathline preview, and ``Trace all...``.

The layer ``pathlines`` shows the pathline image of the window of
``frames_to_merge`` (F) frames that ends at the viewer's current frame t
(frames t-F+1 .. t; near the start, the first F frames): exactly
:func:`~flowtrace_gpu.flowtrace_array` of those frames with the widget's
options. It is computed on a worker thread whenever the time slider, the
source layer or an option changes; one computation runs at a time, and a
result whose request was overtaken by a newer one is dropped, never shown.

The option sub-widgets are made from the option registry
(:mod:`flowtrace_gpu.options`): one per :class:`~flowtrace_gpu.engine.plan.TraceOptions`
field, named after it, so a new option appears here by itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer

from .. import FlowtraceError, available_backends, flowtrace_array, time_legend
from ..options import FLOWTRACE, FLOWTRACE_ARRAY, image_option_names, registry, split
from ._reader import SOURCE_KEY, contrast_limits, frame_window

#: Names of the layers the widget writes.
PREVIEW_LAYER = "pathlines"
LEGEND_LAYER = "legend"
#: Default window: the README's examples' F, capped at the layer's frames.
DEFAULT_FRAMES_TO_MERGE = 30
#: Run options the widget sets itself (backend) or napari shows (progress).
_NOT_IN_DIALOG = ("backend", "progress")


# ----------------------------------------------------------- option widgets

def option_widget(opt):
    """A magicgui widget for option ``opt``, named after it, holding its default.

    On/off options are check boxes, options with choices combo boxes, whole
    numbers and percentages spin boxes; options whose default is None (e.g.
    ``colormap``, ``bit_depth``) are text fields, empty for None, read with
    the command line's conversion (:func:`option_value`).
    """
    common = dict(name=opt.name, label=opt.name, tooltip=opt.help)
    if opt.choices:
        return ComboBox(choices=list(opt.choices), value=opt.default,
                        nullable=opt.default is None, **common)
    if opt.is_flag and isinstance(opt.default, bool):
        box = CheckBox(value=opt.default, **common)
        box.native.setText(opt.name)  # the keyword as spelled in the API (magicgui drops the _)
        return box
    if opt.default is None:
        return LineEdit(value="", **common)
    if opt.cli_type is int:
        return SpinBox(value=opt.default, min=_lowest(opt, (0, 1)), max=2**31 - 1, **common)
    if opt.cli_type is float:
        top = next(v for v in (1e6, 99.99, 1.0) if _accepts(opt, v))
        return FloatSpinBox(value=opt.default, min=_lowest(opt, (0.0, 1e-3)), max=top, step=0.05,
                            **common)
    return LineEdit(value=str(opt.default), **common)


def _accepts(opt, value) -> bool:
    try:
        opt.check(opt.name, value)
    except FlowtraceError:
        return False
    return True


def _lowest(opt, candidates):
    return next((v for v in candidates if _accepts(opt, v)), candidates[-1])


def option_value(opt, widget):
    """The value of ``opt`` that ``widget`` holds (a text field: None when empty)."""
    if isinstance(widget, LineEdit) and (opt.default is None or not isinstance(opt.default, str)):
        text = widget.value.strip()
        if not text:
            return None
        convert = opt.cli_type or str
        try:
            return convert(text)
        except Exception as exc:  # int(), float() or the command line's own parser
            raise FlowtraceError(f"{opt.name}: cannot read {text!r} ({exc}); {opt.help}") from None
    return widget.value


def image_options():
    """The registry's image options (TraceOptions fields), in its order."""
    names = image_option_names()
    return [o for o in registry() if o.name in names]


def run_options():
    """The registry's run options of :func:`~flowtrace_gpu.flowtrace` shown by ``Trace all...``."""
    names = image_option_names()
    return [o for o in registry()
            if o.name not in names and FLOWTRACE in o.calls and o.name not in _NOT_IN_DIALOG]


# ----------------------------------------------------------- the widget

class Pathlines(Container):
    """Live pathline preview of the window ending at the current frame, and ``Trace all...``.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer it docks in (napari passes it by this annotation).
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._options = image_options()
        source = ComboBox(name="source_layer", label="source layer", choices=self._movie_layers,
                          nullable=True, tooltip="the recording (an image layer with time on "
                                                 "axis 0)")
        frames = SpinBox(name="frames_to_merge", label="frames_to_merge",
                         value=DEFAULT_FRAMES_TO_MERGE, min=1, max=2**31 - 1,
                         tooltip="F: frames per window (the preview's window ends at the "
                                 "current frame)")
        backends = ["auto"] + [b for b in available_backends() if b != "auto"]
        backend = ComboBox(name="backend", label="backend", choices=backends, value="auto",
                           tooltip="'auto': cupy on a CUDA GPU, else numba")
        self._status = Label(name="status", value="")
        trace = PushButton(name="trace_all", label="Trace all...",
                           tooltip="trace the whole recording into an output (or a new layer)")
        super().__init__(widgets=[source, frames, *map(option_widget, self._options), backend,
                                  trace, self._status], labels=True)
        self.viewer = viewer
        self._wanted = 0          # generation of the newest request
        self._settled_at = 0      # generation whose outcome is on screen
        self._worker = None
        self._shown_key = None
        self._dialog = None
        self._legend_key = self._legend_image = None
        for widget in [frames, backend] + [self[o.name] for o in self._options]:
            widget.changed.connect(self._request)
        source.changed.connect(self._source_changed)
        trace.changed.connect(self.open_trace_all)
        self._gone = False
        self._viewer_events = [(viewer.dims.events.current_step, self._request),
                               (viewer.layers.events.inserted, self._layers_changed),
                               (viewer.layers.events.removed, self._layers_changed)]
        for event, handler in self._viewer_events:
            event.connect(handler)
        # The viewer outlives its dock widgets while it closes: stop listening first.
        self.native.destroyed.connect(self._disconnect)
        self._layers_changed()

    def _disconnect(self, *_):
        for event, handler in self._viewer_events:
            event.disconnect(handler)
        self._viewer_events = []
        self._gone = True  # a preview still running finds no widget to update

    # ---------------------------------------------------------------- layers

    def _movie_layers(self, _widget=None) -> list:
        """Image layers with time on axis 0 (at least 3 axes, RGB's channel not counted)."""
        return [layer for layer in self.viewer.layers
                if isinstance(layer, napari.layers.Image) and layer.ndim >= 3
                and not layer.multiscale and layer.name not in (PREVIEW_LAYER, LEGEND_LAYER)] \
            if hasattr(self, "viewer") else []

    def _layers_changed(self, *_):
        try:
            self.source_layer.reset_choices()
        except RuntimeError:  # the Qt widget is gone (the viewer is closing)
            self._disconnect()
            return
        if self.source_layer.value is None:
            choices = self._movie_layers()
            if choices:
                active = self.viewer.layers.selection.active
                self.source_layer.value = active if active in choices else choices[-1]

    def _source_changed(self, layer):
        if layer is not None:
            count = int(layer.data.shape[0])
            self.frames_to_merge.max = count
            if self.frames_to_merge.value > count:
                self.frames_to_merge.value = count  # requests the preview itself
        self._request()

    # ---------------------------------------------------------------- preview

    @property
    def settled(self) -> bool:
        """Whether the newest request's outcome (image, message or nothing to do) is shown."""
        return self._worker is None and self._settled_at == self._wanted

    def _request(self, *_):
        if not self._viewer_events:
            return  # closed
        self._wanted += 1
        if self._worker is None:
            self._start()
        # else: the running computation's end starts the newest request

    def current_frame(self, layer) -> int:
        """The frame of ``layer`` the viewer shows (its axis 0 at the dims point)."""
        position = layer.world_to_data(self.viewer.dims.point)
        return int(np.clip(round(float(position[0])), 0, layer.data.shape[0] - 1))

    def window(self, layer, frames_to_merge: int) -> tuple[int, int]:
        """``(start, stop)`` of the window ending at the current frame (the first F near the start)."""
        count = int(layer.data.shape[0])
        if frames_to_merge > count:
            raise FlowtraceError(
                f"frames_to_merge={frames_to_merge} but the layer {layer.name!r} has {count} "
                "frames; choose a shorter window")
        stop = max(self.current_frame(layer) + 1, frames_to_merge)
        return stop - frames_to_merge, stop

    def trace_options(self, layer=None) -> dict:
        """The image options the widgets hold; a camera file's bit depth as flowtrace() takes it."""
        values = {o.name: option_value(o, self[o.name]) for o in self._options}
        metadata = getattr(layer, "metadata", {}) or {}
        if values.get("bit_depth") is None and metadata.get("bit_depth") and \
                np.dtype(layer.data.dtype).itemsize > 1:
            values["bit_depth"] = metadata["bit_depth"]  # as flowtrace() reads it from the file
        return values

    def _start(self):
        generation = self._wanted
        try:
            layer = self.source_layer.value
        except RuntimeError:  # the Qt widget is gone (the viewer closed meanwhile)
            self._disconnect()
            return
        if layer is None or layer not in self.viewer.layers:
            self._settle(generation, "open a recording (an image layer with time on axis 0)")
            return
        try:
            frames_to_merge = int(self.frames_to_merge.value)
            start, stop = self.window(layer, frames_to_merge)
            options = self.trace_options(layer)
            split(options, FLOWTRACE_ARRAY)  # checked here: a refusal is a message, no thread
        except FlowtraceError as exc:
            self._settle(generation, str(exc))
            return
        key = (id(layer), id(layer.data), start, stop, frames_to_merge, repr(options),
               self.backend.value)
        if key == self._shown_key:
            self._settle(generation, self._status.value)
            return
        worker = create_worker(preview_image, layer.data, start, stop, frames_to_merge, options,
                               self.backend.value, _start_thread=False)
        worker.returned.connect(lambda image: self._returned(generation, key, image, layer))
        worker.errored.connect(lambda exc: self._errored(generation, exc))
        worker.finished.connect(self._finished)
        self._worker = worker
        worker.start()

    def _returned(self, generation, key, image, layer):
        if self._gone or generation != self._wanted:
            return  # overtaken: a newer request is waiting
        if isinstance(image, FlowtraceError):  # e.g. a frame the file cannot give
            self._errored(generation, image)
            return
        start, stop = key[2], key[3]
        self._show(image, layer)
        self._shown_key = key
        try:
            self._show_legend(self._legend(image))
        except FlowtraceError as exc:
            self._settle(generation, str(exc))
            return
        self._settle(generation, f"window: frames {start}..{stop - 1} of {layer.name}")

    def _errored(self, generation, exc):
        if not self._gone and generation == self._wanted:
            message = str(exc) if isinstance(exc, FlowtraceError) else f"{type(exc).__name__}: {exc}"
            self._shown_key = None
            self._settle(generation, message)

    def _finished(self):
        self._worker = None
        if not self._gone and self._settled_at != self._wanted:
            self._start()

    def _settle(self, generation: int, message: str):
        self._settled_at = generation
        self._status.value = message

    def _show(self, image: np.ndarray, source):
        """Put ``image`` into the layer ``pathlines`` (made anew when its kind changes)."""
        rgb = image.ndim == 3
        bits = (source.metadata or {}).get("bit_depth") if image.dtype != np.uint8 else None
        limits = contrast_limits(image.dtype, bits)
        layers = self.viewer.layers
        layer = layers[PREVIEW_LAYER] if PREVIEW_LAYER in layers else None
        if layer is not None and (layer.rgb != rgb or layer.data.shape != image.shape
                                  or layer.data.dtype != image.dtype):
            layers.remove(layer)
            layer = None
        if layer is None:
            self.viewer.add_image(image, name=PREVIEW_LAYER, rgb=rgb, contrast_limits=limits)
        else:
            layer.data = image
            if tuple(layer.contrast_limits) != limits:
                layer.contrast_limits = limits

    def _legend(self, image):
        """The time legend of the preview's window (:func:`~flowtrace_gpu.time_legend`), or None.

        Shown with ``color_series`` or ``fade_tails``: the colors of the
        window's frames, oldest to newest, ticks in ms or s where the
        recording's fps is known. Made again only when what it shows changes.
        """
        color, fade = bool(self.color_series.value), bool(self.fade_tails.value)
        if not (color or fade):
            return None
        layer = self.source_layer.value
        fps = (getattr(layer, "metadata", None) or {}).get("fps")
        colormap = option_value(self._option("colormap"), self.colormap) if color else None
        key = (int(self.frames_to_merge.value), fps, repr(colormap), fade, color)
        if key != self._legend_key:
            self._legend_image = time_legend(key[0], fps=fps, colormap=colormap, fade_tails=fade,
                                             color_series=color)
            self._legend_key = key
        return self._legend_image

    def _option(self, name):
        return next(o for o in self._options if o.name == name)

    def _show_legend(self, legend):
        """Add or update the image layer ``legend`` from ``legend`` ((h, w, 3) uint8); None removes it.

        The legend sits below the preview, scaled to the preview's width.
        """
        layers = self.viewer.layers
        if legend is None:
            if LEGEND_LAYER in layers:
                layers.remove(LEGEND_LAYER)
            return
        legend = np.asarray(legend)
        height, width = (layers[PREVIEW_LAYER].data.shape[:2] if PREVIEW_LAYER in layers
                         else legend.shape[:2])
        scale = width / legend.shape[1]
        where = dict(scale=(scale, scale), translate=(height + 0.02 * height, 0))
        if LEGEND_LAYER in layers and layers[LEGEND_LAYER].data.shape == legend.shape:
            layer = layers[LEGEND_LAYER]
            if layer.data is not legend:
                layer.data = legend
            layer.scale, layer.translate = where["scale"], where["translate"]
        else:
            if LEGEND_LAYER in layers:
                layers.remove(LEGEND_LAYER)
            self.viewer.add_image(legend, name=LEGEND_LAYER, rgb=legend.ndim == 3, **where)

    # ---------------------------------------------------------------- trace all

    def open_trace_all(self, *_):
        """Show the ``Trace all...`` dialog for the source layer."""
        if self._dialog is None:
            self._dialog = TraceAll(self)
        self._dialog.prepare()
        self._dialog.show()
        return self._dialog


def preview_image(data, start: int, stop: int, frames_to_merge: int, options: dict,
                  backend: str) -> np.ndarray:
    """``flowtrace_array(data[start:stop], F, **options)[0]``: the preview of one window.

    A FlowtraceError (an unreadable frame, an unavailable backend) is
    returned, not raised: the widget shows its message.
    """
    try:
        window = frame_window(data, start, stop)  # this plugin's layer: straight from its cache
        if window is None:
            window = data[start:stop]
            if hasattr(window, "compute"):  # another lazy layer: read here, on this thread
                window = window.compute(scheduler="synchronous")
            window = np.asarray(window)
        return flowtrace_array(window, frames_to_merge, backend=backend, progress=False,
                               **options)[0]
    except FlowtraceError as exc:
        return exc


# ----------------------------------------------------------- trace all

@dataclass
class RunState:
    """What a running ``Trace all...`` shares between its thread and the GUI."""

    n: int = 0
    total: int | None = None
    desc: str = "flowtrace"
    cancel: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self):
        """Ask the run to stop: a SIGINT to the run's process, or the in-memory run's frames refused."""
        with self.lock:
            self.cancel.set()
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)


class Cancelled(Exception):
    """The user cancelled an in-memory ``Trace all...``."""


class TraceAll(Container):
    """The ``Trace all...`` dialog: an output, the run options, Run and Cancel.

    A layer read from a file (by this plugin: ``layer.metadata['flowtrace_source']``)
    is traced by :func:`~flowtrace_gpu.flowtrace` into the output, in a
    process of its own (:mod:`flowtrace_gpu.napari._job`): Cancel stops it
    as Ctrl-C does, the complete images recorded, so ``resume`` finishes it.
    Any other layer is traced in memory by :func:`~flowtrace_gpu.flowtrace_array`
    into a new layer (the output is not used).
    """

    def __init__(self, pathlines: Pathlines):
        self._pathlines = pathlines
        self._run_options = run_options()
        output = FileEdit(name="output", label="output", mode="w",
                          tooltip="a folder (PNG images), a .tif stack, a video or a .zarr")
        self._status = Label(name="status", value="")
        run = PushButton(name="run_button", label="Run")
        cancel = PushButton(name="cancel_button", label="Cancel", enabled=False)
        super().__init__(widgets=[output, *map(option_widget, self._run_options), run, cancel,
                                  self._status], labels=True)
        self.native.setWindowTitle("Trace all")
        self.native.setMinimumWidth(460)
        try:  # a window of its own: in the viewer's theme
            from napari.qt import get_stylesheet

            self.native.setStyleSheet(get_stylesheet(pathlines.viewer.theme))
        except (ImportError, AttributeError, KeyError):
            pass
        self._worker = None
        self._state = None
        self._bar = None
        self._default = None  # the output prepare() proposed, until the user changes it
        self._timer = QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._poll)
        run.changed.connect(self.start)
        cancel.changed.connect(self.cancel)
        #: How the last run ended: 'done', 'interrupted', 'error' or 'cancelled'.
        self.outcome = None

    @property
    def running(self) -> bool:
        return self._worker is not None

    def prepare(self):
        """Default output beside the source layer's recording (or none for an in-memory layer)."""
        layer = self._pathlines.source_layer.value
        path = (getattr(layer, "metadata", {}) or {}).get(SOURCE_KEY)
        self.output.enabled = path is not None
        untouched = not str(self.output.value).strip(".") or self.output.value == self._default
        if path is not None and untouched and not self.running:
            source = Path(path)
            folder = source if source.is_dir() else source.parent
            stem = source.name if source.is_dir() else source.stem
            frames = self._pathlines.frames_to_merge.value
            self.output.value = self._default = folder / f"{stem}_pathlines_F{frames}"

    def job(self) -> dict:
        """The run the dialog and the widget describe (checked only by the run itself)."""
        p = self._pathlines
        layer = p.source_layer.value
        if layer is None:
            raise FlowtraceError("choose a source layer first")
        options = p.trace_options()  # flowtrace() reads the file's bit depth itself
        options.update({o.name: option_value(o, self[o.name]) for o in self._run_options})
        options["backend"] = p.backend.value
        return {"layer": layer, "source": (layer.metadata or {}).get(SOURCE_KEY),
                "frames_to_merge": int(p.frames_to_merge.value), "output": str(self.output.value),
                "options": options}

    def start(self, *_):
        """Start the run (a no-op while one runs)."""
        if self.running:
            return
        try:
            job = self.job()
        except FlowtraceError as exc:
            self._end("error", str(exc))
            return
        self._state = state = RunState()
        if job["source"] is not None:
            worker = create_worker(run_file, job, state, _start_thread=False)
        else:
            worker = create_worker(run_in_memory, job, state, _start_thread=False)
        worker.returned.connect(self._returned)
        worker.errored.connect(lambda exc: self._end("error", str(exc)))
        worker.finished.connect(self._finished)
        from napari.utils import cancelable_progress

        self._bar = cancelable_progress(total=0, desc=f"flowtrace {job['layer'].name}")
        self._worker = worker
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self._status.value = "running"
        self.outcome = None
        self._timer.start()
        worker.start()

    def cancel(self, *_):
        """Stop the run cleanly (its complete images stay; ``resume`` finishes a folder output)."""
        if self._state is not None:
            self._state.stop()

    def _poll(self):
        state, bar = self._state, self._bar
        if state is None or bar is None:
            return
        if bar.is_canceled:  # napari's own Cancel, in the activity dock
            self.cancel()
        if state.total is not None and bar.total != state.total:
            bar.total = state.total
        if bar.desc != state.desc:
            bar.set_description(state.desc)
        if state.n != bar.n:
            bar.n = state.n
            bar.refresh()

    def _returned(self, result):
        outcome, message, images = result
        if images is not None:
            layer = self._pathlines.source_layer.value
            name = f"{getattr(layer, 'name', 'frames')} pathlines (all)"
            self._pathlines.viewer.add_image(images, name=name, rgb=images.ndim == 4)
        self._end(outcome, message)

    def _end(self, outcome, message):
        self.outcome = outcome
        self._status.value = message

    def _finished(self):
        self._timer.stop()
        self._poll()
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False


def run_file(job: dict, state: RunState):
    """Trace a recording file with flowtrace() in a child process; ``(outcome, message, None)``."""
    request = {"source": job["source"], "frames_to_merge": job["frames_to_merge"],
               "output": job["output"], "options": job["options"]}
    with tempfile.TemporaryFile("w+") as errors:
        with state.lock:
            if state.cancel.is_set():
                return "cancelled", "cancelled before it started", None
            process = subprocess.Popen(
                [sys.executable, "-m", "flowtrace_gpu.napari._job"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=errors, text=True, env=_child_env())
            state.process = process
        process.stdin.write(json.dumps(request))
        process.stdin.close()
        last = {}
        for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "progress" in message:
                state.n, state.total, state.desc = message["progress"]
            else:
                last = message
        process.wait()
        errors.seek(0)
        tail = errors.read().strip().splitlines()[-1:]
    if "done" in last:
        return "done", f"wrote {last['files']} image(s) to {last['done']}", None
    if "interrupted" in last:
        return "interrupted", last["interrupted"], None
    if "error" in last:
        return "error", last["error"], None
    return "error", f"the run ended with status {process.returncode}: {' '.join(tail)}", None


def _child_env() -> dict:
    env = dict(os.environ)
    # The child imports this very package, wherever it is installed from.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


class WatchedFrames:
    """The layer's frames as flowtrace_array reads them: counted, and refused once cancelled."""

    def __init__(self, data, state: RunState):
        self._data = data
        self._state = state
        self.shape = tuple(data.shape)
        self.dtype = np.dtype(data.dtype)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        if self._state.cancel.is_set():
            raise Cancelled()
        frame = self._data[index]
        if hasattr(frame, "compute"):
            frame = frame.compute(scheduler="synchronous")
        self._state.n += 1
        return np.asarray(frame)


def run_in_memory(job: dict, state: RunState):
    """Trace an in-memory layer with flowtrace_array; ``(outcome, message, images or None)``."""
    layer = job["layer"]
    takes = {o.name for o in registry() if FLOWTRACE_ARRAY in o.calls}
    options = {k: v for k, v in job["options"].items() if k in takes}
    passes = 2 if options.get("normalize") == "global" else 1  # a measuring pass first
    state.total = passes * len(range(0, int(layer.data.shape[0]), options.get("frames_to_skip", 1)))
    try:
        images = flowtrace_array(WatchedFrames(layer.data, state), job["frames_to_merge"],
                                 progress=False, **options)
    except Cancelled:
        return "cancelled", "cancelled; nothing was written (an in-memory layer)", None
    except FlowtraceError as exc:
        return "error", str(exc), None
    return "done", f"{len(images)} images in a new layer", images
