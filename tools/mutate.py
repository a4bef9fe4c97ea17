"""A small mutation pass over flowtrace_gpu's core: does the suite catch one-line bugs?

Each mutant replaces one exact snippet of one package file (it must occur
exactly once) with a realistic bug, runs only the few test files most
likely to catch it (``-x``, the default "dev" hypothesis profile), and puts
the file back byte for byte, whatever happens (hypothesis draws from a
fixed seed, so a run's kills are reproducible). A mutant is *killed* when
those tests fail, *survived* when they pass. A survivor needs a new test
that kills it, or an argument that it is equivalent (no input tells it
apart); :data:`EQUIVALENT` holds those arguments.

The mutants cover the stretch and its rounding, the window layouts,
``frames_to_skip``, the median and differences, colors and fades, global
normalization and ``saturate``, the readers' flips and bit unpacking, and
the resume bookkeeping. They run on the NumPy paths (``-k`` leaves the
Numba backend out where a test file parametrizes by backend): the Numba
kernels compile for minutes, and their own tests compare them with the
same oracle.

Usage, from the repository root (one mutant at a time; nothing runs in the
background)::

    .venv/bin/python tools/mutate.py --list
    .venv/bin/python tools/mutate.py                  # every mutant
    .venv/bin/python tools/mutate.py round-trunc skip-count  # some, by name
    .venv/bin/python tools/mutate.py --json results.json

It prints one line per mutant and a Markdown table at the end; the exit
status is 1 when a mutant survived that is not listed as equivalent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "flowtrace_gpu"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to flowtrace_gpu/
    old: str
    new: str
    tests: tuple  # pytest arguments: files, -k expressions
    what: str


NOT_NUMBA = ("-k", "not numba")
#: The resume tests that run in-process on the NumPy backend (no signals, no subprocesses).
RESUME_TESTS = ("tests/runs/test_long_runs.py", "-m", "not slow", "-k",
                "(resume or stretches or manifest) and not numba")


def m(name, path, old, new, tests, what):
    return Mutant(name, path, old, new, tuple(tests), what)


MUTANTS = [
    # --- the stretch and its rounding ---------------------------------------------
    m("round-trunc", "kernels/stretch.py", "    scaled += 0.5\n", "    scaled += 0.0\n",
      ["tests/test_parity.py", "-k", "numpy"], "truncate instead of rounding half up"),
    m("clip-254", "kernels/stretch.py", "xp.clip(scaled, 0.0, 255.0, out=scaled)",
      "xp.clip(scaled, 0.0, 254.0, out=scaled)",
      ["tests/test_parity.py", "-k", "numpy"], "clip one level low"),
    m("peak0-scale", "kernels/stretch.py", "scale = 255.0 / xp.where(peak == 0, 255.0, peak)",
      "scale = 255.0 / xp.where(peak == 0, 1.0, peak)",
      ["tests/backends/test_cupy_standin.py", "tests/engine/test_scaling.py", *NOT_NUMBA],
      "peak 0: another scale"),
    m("global-negative-peak", "kernels/stretch.py",
      "scaled = proj * (255.0 / peak if peak != 0 else 1.0)",
      "scaled = proj * (255.0 / peak if peak > 0 else 1.0)",
      ["tests/engine/test_scaling.py", "tests/engine/test_normalize_global.py", *NOT_NUMBA],
      "a negative run peak left unscaled"),
    m("none-trunc", "kernels/stretch.py",
      "return xp.floor(xp.clip(proj, info.min, info.max) + 0.5).astype(dtype)",
      "return xp.floor(xp.clip(proj, info.min, info.max)).astype(dtype)",
      ["tests/engine/test_scaling.py", *NOT_NUMBA], "normalize='none' truncates"),
    m("none-signed-floor", "kernels/stretch.py",
      "return xp.floor(xp.clip(proj, info.min, info.max) + 0.5).astype(dtype)",
      "return xp.floor(xp.clip(proj, max(info.min, 0), info.max) + 0.5).astype(dtype)",
      ["tests/engine/test_scaling.py", *NOT_NUMBA], "normalize='none' clips signed values at 0"),
    m("invert-offset-int8", "engine/plan.py",
      'if self.dtype.kind in "ui" and self.dtype.itemsize > 1:',
      'if self.dtype.kind in "ui" and self.dtype.itemsize >= 1:',
      ["tests/engine/test_scaling.py", "tests/test_properties.py", *NOT_NUMBA],
      "invert_color of 8-bit frames from the dtype's maximum (int8: 127)"),
    m("bit-depth-offset", "engine/plan.py", "return float(2 ** self.options.bit_depth - 1)",
      "return float(2 ** self.options.bit_depth)", ["tests/engine/test_scaling.py", *NOT_NUMBA],
      "invert offset 2**bits instead of 2**bits - 1"),
    m("window-fits", "engine/plan.py", "        if f > n_frames:\n", "        if f >= n_frames:\n",
      ["tests/test_properties.py", "tests/io/test_frames_to_skip.py", *NOT_NUMBA],
      "a window as long as the movie refused"),
    m("n-out", "engine/plan.py",
      "n_windows = len(trace_sequence(n_frames, frames_to_merge, windows)) - frames_to_merge + 1",
      "n_windows = len(trace_sequence(n_frames, frames_to_merge, windows)) - frames_to_merge",
      ["tests/io/test_frames_to_skip.py", "-k", "tiff_stack"], "one image fewer"),
    # --- windows ----------------------------------------------------------------
    m("original-gap", "engine/plan.py", "        del indices[frames_to_merge]\n",
      "        del indices[frames_to_merge - 1]\n",
      ["tests/test_parity.py", "-k", "numpy"], "the original skips frame F-1, not F"),
    m("original-n-eq-f", "engine/plan.py",
      'if windows == "original" and n_frames > frames_to_merge:',
      'if windows == "original" and n_frames >= frames_to_merge:',
      ["tests/test_properties.py", *NOT_NUMBA], "N == F with original windows"),
    m("original-stream", "engine/plan.py",
      "itertools.chain(range(frames_to_merge), itertools.count(frames_to_merge + 1))",
      "itertools.chain(range(frames_to_merge), itertools.count(frames_to_merge))",
      ["tests/io/test_formats.py", "tests/engine/test_pipeline.py", "tests/io/test_array_sources.py",
       *NOT_NUMBA], "a stream of unknown length reads frame F after all"),
    # --- frames_to_skip -----------------------------------------------------------
    m("skip-count", "io/selection.py",
      "self.n_frames = None if end is None else len(range(start, end, skip))",
      "self.n_frames = None if end is None else (end - start) // skip",
      ["tests/io/test_frames_to_skip.py"], "drop the last kept frame when s does not divide N"),
    m("skip-names", "io/selection.py", "source.names[start:self.stop:skip]",
      "source.names[start:self.stop - 1:skip]",
      ["tests/io/test_frames_to_skip.py"], "names miss the last kept frame"),
    m("skip-raw-index", "io/selection.py", "            raw = self.start + i * self.skip\n",
      "            raw = self.start + i * self.skip + (i > 0)\n",
      ["tests/io/test_frames_to_skip.py"], "read the frame after each kept one"),
    m("skip-video", "io/video.py", "                while position <= raw:\n",
      "                while position < raw:\n",
      ["tests/io/test_frames_to_skip.py", "-k", "video"], "video yields the frame before"),
    m("skip-zarr-chunk", "io/zarr_store.py", "        if not self.start <= raw < self.stop:\n",
      "        if not self.start <= raw <= self.stop:\n",
      ["tests/io/test_frames_to_skip.py", "-k", "zarr"], "zarr serves past its decoded chunk"),
    m("skip-stream", "io/selection.py",
      "            if self.stop is not None and raw >= self.stop:\n",
      "            if self.stop is not None and raw >= self.stop - 1:\n",
      ["tests/test_controls.py", *NOT_NUMBA], "a selection with a stop ends one frame early"),
    # --- median and differences ----------------------------------------------------
    m("median-short", "kernels/window.py", "median = xp.median(a[:n], axis=0)",
      "median = xp.median(a[:n - 1], axis=0)",
      ["tests/test_parity.py", "-k", "numpy"], "median of all but the newest frame"),
    m("median-given-shift", "kernels/window.py", "            median -= frames[start]\n",
      "            median -= frames[start - 1]\n",
      ["tests/backends/test_cupy_standin.py"], "a given median shifted by the wrong frame"),
    m("first-order", "kernels/window.py", "        a[1:n] -= a[0]\n        a[0] -= a[0]\n",
      "        a[0] -= a[0]\n        a[1:n] -= a[0]\n",
      ["tests/test_parity.py", "-k", "numpy"], "subtract_first zeroes row 0 first"),
    m("diff-sign", "kernels/window.py", "xp.subtract(a[1:n], a[: n - 1], out=b[: n - 1])",
      "xp.subtract(a[: n - 1], a[1:n], out=b[: n - 1])",
      ["tests/test_parity.py", "-k", "numpy"], "earlier minus later"),
    m("add-first-which", "kernels/window.py", "        a[n] = frames[start]  # the raw",
      "        a[n] = frames[start - 1]  # the raw",
      ["tests/test_parity.py", "-k", "numpy"], "add the newest frame, not the first"),
    # --- colors and fade ---------------------------------------------------------
    m("ramp-end", "kernels/colors.py", "RAMP_END = (255, 153, 0)", "RAMP_END = (255, 153, 1)",
      ["tests/engine/test_scaling.py", "tests/test_properties.py", *NOT_NUMBA],
      "a wrong end color of the original's ramp"),
    m("ramp-start", "kernels/colors.py", "RAMP_START = (90, 10, 250)", "RAMP_START = (90, 11, 250)",
      ["tests/engine/test_scaling.py", "tests/test_properties.py", *NOT_NUMBA],
      "a wrong start color of the ramp"),
    m("ramp-no-255", "kernels/colors.py", "    return ramp / 255.0\n", "    return ramp\n",
      ["tests/test_parity.py", "tests/engine/test_scaling.py", "-k", "numpy"],
      "the ramp without the original's second /255"),
    m("colormap-k1", "kernels/colors.py",
      "positions = np.linspace(0.0, 1.0, k) if k > 1 else np.zeros(1)",
      "positions = np.linspace(0.0, 1.0, k) if k > 1 else np.ones(1)",
      ["tests/engine/test_scaling.py", "tests/test_properties.py", *NOT_NUMBA],
      "a one-frame window takes the colormap's last color"),
    m("colormap-reversed", "kernels/colors.py",
      "return np.stack([np.interp(positions, anchors, stops[:, c]) for c in range(3)], axis=1)",
      "return np.stack([np.interp(positions, anchors, stops[::-1, c]) for c in range(3)], axis=1)",
      ["tests/engine/test_scaling.py", *NOT_NUMBA], "colors run newest first"),
    m("rgb-scale-rule", "kernels/colors.py",
      "return tuple(c / 255.0 for c in rgb) if max(rgb) > 1 else rgb",
      "return tuple(c / 255.0 for c in rgb) if max(rgb) >= 1 else rgb",
      ["tests/engine/test_scaling.py", "tests/test_options.py", *NOT_NUMBA],
      "colors in 0-1 with a channel of 1 read as 0-255"),
    m("hex-order", "kernels/colors.py", "for i in (0, 2, 4))", "for i in (4, 2, 0))",
      ["tests/engine/test_scaling.py", *NOT_NUMBA], "'#rrggbb' read as BGR"),
    m("fade-direction", "kernels/colors.py",
      '    return np.linspace(0.0, 1.0, k) if k > 1 else np.ones(1)\n',
      '    return np.linspace(1.0, 0.0, k) if k > 1 else np.ones(1)\n',
      ["tests/engine/test_scaling.py", *NOT_NUMBA], "the newest frame fades"),
    m("fade-k1", "kernels/colors.py",
      '    return np.linspace(0.0, 1.0, k) if k > 1 else np.ones(1)\n',
      '    return np.linspace(0.0, 1.0, k) if k > 1 else np.zeros(1)\n',
      ["tests/engine/test_scaling.py", "tests/test_properties.py", *NOT_NUMBA],
      "a one-frame window fades to nothing"),
    m("fade-color-product", "engine/plan.py",
      "weights = fade if weights is None else weights * fade[:, None]",
      "weights = fade if weights is None else weights * fade[::-1, None]",
      ["tests/engine/test_scaling.py", "tests/test_properties.py", *NOT_NUMBA],
      "colors with fade: the fade reversed"),
    m("none-ramp-unit", "engine/plan.py", "weights = ramp_colors(k) * 255.0",
      "weights = ramp_colors(k)", ["tests/engine/test_scaling.py", *NOT_NUMBA],
      "normalize='none' keeps the ramp's 1/255"),
    # --- normalize='global' and saturate --------------------------------------------
    m("global-first-peak", "engine/pipeline.py",
      "self.peak = value if self.peak is None else max(self.peak, value)",
      "self.peak = value if self.peak is None else self.peak",
      ["tests/engine/test_scaling.py", "tests/engine/test_normalize_global.py", *NOT_NUMBA],
      "the first image's peak as the run's"),
    m("global-last-peak", "engine/pipeline.py",
      "self.peak = value if self.peak is None else max(self.peak, value)",
      "self.peak = value",
      ["tests/engine/test_scaling.py", "tests/engine/test_normalize_global.py", *NOT_NUMBA],
      "the last image's peak as the run's"),
    m("saturate-last-peak", "engine/saturation.py",
      "            self.peak = max(self.peak, image_peak)\n",
      "            self.peak = image_peak\n",
      ["tests/engine/test_saturation.py", "tests/engine/test_normalize_global.py", *NOT_NUMBA],
      "saturate caps the run's level at the last image's peak"),
    m("saturate-lower-edge", "kernels/saturate.py", "    return top * (b + 1) / len(cumulative)\n",
      "    return top * b / len(cumulative)\n",
      ["tests/engine/test_saturation.py", *NOT_NUMBA], "the level at the bin's lower edge"),
    m("saturate-rebin-lower", "kernels/saturate.py",
      "edges = np.arange(1, bins + 1, dtype=np.float64) * (top / new_top)",
      "edges = np.arange(0, bins, dtype=np.float64) * (top / new_top)",
      ["tests/engine/test_saturation.py", "tests/engine/test_normalize_global.py", *NOT_NUMBA],
      "rebinning counts each bin at its lower edge"),
    m("saturate-rounding", "kernels/saturate.py",
      "wanted = max(1, math.ceil((1.0 - percent / 100.0) * int(cumulative[-1])))",
      "wanted = max(1, math.floor((1.0 - percent / 100.0) * int(cumulative[-1])))",
      ["tests/engine/test_saturation.py", *NOT_NUMBA], "the percentile's rank rounded down"),
    m("saturate-no-peak-cap", "engine/saturation.py",
      "        return min(level(self.counts, self.top, self.percent), self.peak)\n",
      "        return level(self.counts, self.top, self.percent)\n",
      ["tests/engine/test_saturation.py", "tests/engine/test_normalize_global.py", *NOT_NUMBA],
      "the run's level may lie above its brightest value"),
    # --- readers: flips and unpacking ------------------------------------------------
    m("cine-flip-axis", "io/cine.py", "            frame = frame[::-1]\n",
      "            frame = frame[:, ::-1]\n", ["tests/io/test_formats.py", "-k", "cine"],
      "bottom-up cine flipped left-right"),
    m("cine-no-flip", "io/cine.py", "        if self._bottom_up:\n            frame = frame[::-1]\n",
      "        if False:\n            frame = frame[::-1]\n", ["tests/io/test_formats.py", "-k", "cine"],
      "bottom-up cine not flipped"),
    m("cine-bgr", "io/cine.py", "            frame = frame[..., ::-1]  # stored BGR\n",
      "            frame = frame[..., :]  # stored BGR\n", ["tests/io/test_formats.py", "-k", "cine"],
      "color cine left BGR"),
    m("cine-row-padding", "io/cine.py", "        stride = image_size // height  # rows may be padded\n",
      "        stride = self._pixel_bytes // height  # rows may be padded\n",
      ["tests/io/test_formats.py", "-k", "cine"], "cine rows read unpadded"),
    m("mraw16-order", "io/mraw.py", 'else np.dtype("<u2")', 'else np.dtype(">u2")',
      ["tests/io/test_formats.py", "-k", "mraw"], "16-bit MRAW read big-endian"),
    m("tiff-page-index", "io/tiff_stack.py",
      "index = raw if self._every_page else handle.series[0].pages[raw].index",
      "index = raw",
      ["tests/io/test_formats.py", "tests/io/test_frames_to_skip.py", "-k", "tiff"],
      "TIFF pages counted from the first page of the file, not of the series"),
    m("video-seek-back", "io/video.py", "if decoder is None or raw < position:",
      "if decoder is None or raw < position - 1:", ["tests/io/test_formats.py", "-k", "video"],
      "seeking back one frame does not restart the decoder"),
    m("unpack12-low-nibble", "io/packed.py", "out[2 * i] = (b0 << 4) | (b1 >> 4)",
      "out[2 * i] = (b0 << 4) | (b1 & 0x0F)",
      ["tests/io/test_formats.py", "-k", "mraw"], "12-bit: the wrong nibble of the middle byte"),
    m("unpack10-mask", "io/packed.py", "out[4 * i + 3] = table[((b3 & 0x03) << 8) | b4]",
      "out[4 * i + 3] = table[((b3 & 0x07) << 8) | b4]",
      ["tests/io/test_camera_files.py", "tests/io/test_formats.py", "tests/io/test_reader_memory.py",
       "-k", "cine or p10 or packed or 10"], "10-bit: one bit too many of byte 3"),
    m("unpack-zero-fill", "io/packed.py", "    if data.size < groups * nbytes:\n",
      "    if data.size <= groups * nbytes:\n",
      ["tests/io/test_formats.py", "-k", "mraw"], "zero-complete a stream that is whole"),
    m("mraw-shift", "io/mraw.py",
      'self._shift = bits - depth if side.lower() == "higher" else 0',
      'self._shift = bits - depth if side.lower() == "lower" else 0',
      ["tests/io/test_formats.py", "tests/io/test_camera_files.py", "-k", "mraw"],
      "MRAW: shift the wrong side"),
    # --- resume bookkeeping ----------------------------------------------------------
    m("segments-join", "runs/output_run.py",
      "if stretches and i - stretches[-1][1] <= frames_to_merge:",
      "if stretches and i - stretches[-1][1] < frames_to_merge:",
      RESUME_TESTS, "gaps of F windows not joined"),
    m("segments-end", "runs/output_run.py", "                stretches[-1][1] = i\n",
      "                stretches[-1][1] = i - 1\n",
      RESUME_TESTS, "a stretch ends one early"),
    m("resume-last-window", "api.py", "_pass(source, sequence[first * stride:last * stride + window],",
      "_pass(source, sequence[first * stride:last * stride + window - 1],",
      RESUME_TESTS, "a stretch reads one frame short"),
    m("resume-remeasure", "api.py", "        if job.peak is None:  # else resumed",
      "        if True:  # else resumed",
      ["tests/engine/test_normalize_global.py", *RESUME_TESTS],
      "a resumed global run measures its peak again"),
    m("resume-todo", "runs/output_run.py",
      "self.todo = [i for i in range(n) if not self.recorder.is_done(i)]",
      "self.todo = list(range(n))", RESUME_TESTS,
      "resume recomputes finished images"),
    m("manifest-ranges", "runs/manifest.py", "            yield from range(start, stop)\n",
      "            yield from range(start, stop - 1)\n",
      RESUME_TESTS,
      "the last image of each complete range is forgotten"),
]

#: Survivors that no input tells apart from the package, and why.
EQUIVALENT = {
    "peak0-scale": "peak 0 is the image's maximum, so every value is <= 0 and clips to 0 "
                   "under any positive scale (255/255 or 255/1): the same bytes.",
    "unpack-zero-fill": "when the stream is exactly whole the zero-completed copy holds the "
                        "same bytes as the stream; only a copy is added.",
    "tiff-page-index": "the series' own page index is read only when the file has one series; "
                       "every top-level page outside it would make a second series, so the "
                       "series' pages are the file's pages 0..N-1 in order and index == raw.",
}


def run_mutant(mutant: Mutant, python: str, timeout: float) -> dict:
    path = PACKAGE / mutant.path
    original = path.read_bytes()
    text = original.decode()
    count = text.count(mutant.old)
    if count != 1:
        return {"name": mutant.name, "status": f"not applied ({count} matches)", "seconds": 0.0}
    start = time.monotonic()
    try:
        path.write_text(text.replace(mutant.old, mutant.new))
        # A fixed hypothesis seed: the same examples every run, so a kill never depends
        # on the examples one run happened to draw.
        cmd = [python, "-m", "pytest", "-p", "no:cacheprovider", "-x", "-q", "--no-header",
               "--hypothesis-seed=0", *mutant.tests]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
            rc = proc.returncode
            tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
        except subprocess.TimeoutExpired:
            rc, tail = -1, ["timed out"]
    finally:
        path.write_bytes(original)
    if rc == 0:
        status = "equivalent" if mutant.name in EQUIVALENT else "survived"
    elif rc == 1:
        status = "killed"
    else:
        status = f"error (rc {rc})"  # collection errors, timeouts: look at it by hand
    return {"name": mutant.name, "status": status, "seconds": round(time.monotonic() - start, 1),
            "tail": " ".join(tail)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    args = parser.parse_args(argv)
    chosen = [mu for mu in MUTANTS if not args.names or mu.name in args.names]
    unknown = set(args.names) - {mu.name for mu in MUTANTS}
    if unknown:
        parser.error(f"no mutants named {sorted(unknown)}")
    if args.list:
        for mu in chosen:
            print(f"{mu.name:24} {mu.path:22} {mu.what}")
        return 0
    results = []
    for mu in chosen:
        result = run_mutant(mu, sys.executable, args.timeout)
        result.update(path=mu.path, what=mu.what, tests=" ".join(mu.tests))
        results.append(result)
        print(f"{result['status']:12} {mu.name:24} {result['seconds']:7.1f}s  {result['tail']}",
              flush=True)
    print("\n| mutant | file | bug | tests run | result |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['path']} | {r['what']} | `{r['tests']}` | {r['status']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return int(any(r["status"] == "survived" or r["status"].startswith(("error", "not"))
                   for r in results))


if __name__ == "__main__":
    sys.exit(main())
