"""Command line: ``flowtrace SOURCE FRAMES [OUT_DIR] [options]`` and ``flowtrace demo``.

Bad input prints one line on stderr and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import FlowtraceError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowtrace",
        description="Pathline images from a movie of particles in a flow: one image per "
                    "window of FRAMES consecutive frames, the per-pixel maximum over time. "
                    "'flowtrace demo [OUT_DIR]' traces a built-in synthetic movie.",
        epilog="Example: flowtrace sample_data 30 sample_output --subtract-median",
    )
    p.add_argument("source", metavar="SOURCE",
                   help="folder of frames (tif, png, jpg, bmp), multi-page .tif, video "
                        "(.mp4 .avi .mov .mkv), Photron .mraw or Phantom .cine")
    p.add_argument("frames", metavar="FRAMES", type=int, help="frames per window (frames_to_merge)")
    p.add_argument("out_dir", metavar="OUT", nargs="?", default="same",
                   help="a folder (PNG per window), a .tif (one stack) or a video file "
                        "(.mp4 .avi .mov .mkv); default: beside the source")
    p.add_argument("--format", choices=("png", "tiff", "video"),
                   help="output kind (default from OUT); 'tiff' with a folder: one TIFF per window")
    p.add_argument("--fps", type=float, help="frame rate of a video output (default: the source's, else 30)")
    p.add_argument("--grayscale", action="store_true", help="trace the luma of color frames")
    _add_options(p)
    p.add_argument("--frames-to-skip", type=int, default=1, metavar="N",
                   help="keep every N-th frame (default 1)")
    p.add_argument("--max-cores", type=int, default=8, metavar="N",
                   help="most threads to use (default 8)")
    p.add_argument("--no-parallel", action="store_true", help="run serially on one thread")
    p.add_argument("--version", action="version", version=f"flowtrace_gpu {__version__}")
    return p


def _add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what each window shows")
    g.add_argument("--subtract-median", action="store_true",
                   help="subtract each window's median (removes the still background)")
    g.add_argument("--subtract-first", action="store_true", help="subtract each window's first frame")
    g.add_argument("--take-diff", action="store_true", help="trace frame-to-frame differences")
    g.add_argument("--diff-order", type=int, default=1, metavar="N", help="order of --take-diff")
    g.add_argument("--add-first-frame", action="store_true",
                   help="add each window's raw first frame back")
    g.add_argument("--color-series", action="store_true", help="tint frames by time (RGB out)")
    g.add_argument("--invert-color", action="store_true",
                   help="dark particles on a light background")
    g.add_argument("--fade-tails", action="store_true",
                   help="fade older frames: weight j/(K-1) in a window of K (oldest black)")
    g.add_argument("--colormap", metavar="MAP",
                   help="with --color-series: a matplotlib colormap name, or colors "
                        "separated by commas ('#5a0afa,#ff9900')")
    g.add_argument("--normalize", choices=("frame", "global", "none"), default="frame",
                   help="'frame': each image stretched to 255 (the original; flickers); "
                        "'global': one scale for the whole run (reads the frames twice); "
                        "'none': raw values in the input's dtype (default frame)")
    g.add_argument("--bit-depth", type=int, metavar="BITS",
                   help="bits used by 16-bit frames (e.g. 12): --invert-color uses 2**BITS-1")
    g.add_argument("--windows", choices=("original", "sliding"), default="sliding",
                   help="'original' reproduces the original's pixels (it never reads frame "
                        "FRAMES); 'sliding' uses every window of FRAMES consecutive frames (default)")
    r = p.add_argument_group("how it runs")
    r.add_argument("--backend", default="auto", choices=("auto", "cupy", "numba", "numpy"),
                   help="array backend (default auto: cupy on a CUDA GPU, else numba)")
    r.add_argument("--device", type=int, metavar="N",
                   help="CUDA device for --backend cupy (default FLOWTRACE_DEVICE or 0)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _options(args) -> dict:
    return dict(subtract_median=args.subtract_median, subtract_first=args.subtract_first,
                take_diff=args.take_diff, diff_order=args.diff_order,
                add_first_frame=args.add_first_frame, color_series=args.color_series,
                invert_color=args.invert_color, windows=args.windows, backend=args.backend,
                device=args.device,
                fade_tails=args.fade_tails, colormap=_colormap(args.colormap),
                normalize=args.normalize, bit_depth=args.bit_depth)


def _colormap(text):
    if text is None or "," not in text:
        return text
    return [part.strip() for part in text.split(",")]


def _demo_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowtrace demo",
        description="Generate a seeded synthetic movie of tracer particles in a cellular "
                    "flow, trace it (30-frame windows, median subtracted) and write the "
                    "pathline images and a side-by-side preview.png.")
    p.add_argument("out_dir", metavar="OUT_DIR", nargs="?", default="demo_output")
    _add_options(p)
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["demo"]:
            return _demo(_demo_parser().parse_args(argv[1:]))
        return _trace(_parser().parse_args(argv))
    except FlowtraceError as exc:
        print(f"flowtrace: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("flowtrace: interrupted; images written so far are complete", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permissions changed mid-run, ...
        print(f"flowtrace: error: {exc}", file=sys.stderr)
        return 1


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _trace(args) -> int:
    from .api import flowtrace

    result = flowtrace(args.source, args.frames, args.out_dir, use_parallel=not args.no_parallel,
                       max_cores=args.max_cores, frames_to_skip=args.frames_to_skip,
                       format=args.format, fps=args.fps, grayscale=args.grayscale,
                       progress=_progress(args), **_options(args))
    if not args.quiet:
        if isinstance(result, list):
            where = result[0].parent if result else args.out_dir
            print(f"flowtrace: wrote {len(result)} images to {where}", file=sys.stderr)
        else:
            print(f"flowtrace: wrote {result}", file=sys.stderr)
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    options = _options(args)
    backend = options.pop("backend")
    options.pop("device")
    if not any(options[k] for k in ("subtract_median", "subtract_first", "take_diff",
                                    "add_first_frame", "color_series", "invert_color",
                                    "fade_tails")):
        options.pop("subtract_median")  # demo default: median subtracted
    result = run_demo(args.out_dir, backend=backend, progress=_progress(args), **options)
    print(f"flowtrace demo: traced {result['n_frames']} synthetic frames into "
          f"{result['n_images']} images in {result['pathlines']}; preview: {result['preview']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
