"""Command line: ``flowtrace SOURCE FRAMES [OUT] [options]``, ``flowtrace demo``, ``flowtrace batch``
and ``flowtrace info SOURCE [--json]``.

Every option flag comes from the option registry (:mod:`flowtrace_gpu.options`),
so the command line, the Python calls and the docs' table cannot drift apart.
Every failure is one line on stderr, no traceback: bad input exits with status
2 before anything is written; a run stopped by a frame it cannot read or a
disk it cannot write exits with 1, saying how many images are complete; SIGINT
and SIGTERM exit with 130 and 143 after "interrupted after N of M images;
rerun with --resume to finish". Notes (a stale lock taken over, a resumed
run) are lines starting "flowtrace: " too; ``--quiet`` keeps only warnings.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ._version import __version__
from .errors import FlowtraceError, IncompleteRunError, RunInterrupted
from .options import image_option_names, registry, step_flags

EXIT_USAGE = 2
#: A run stopped mid-way, or some recordings of a batch failed (the others completed).
EXIT_FAILED = 1

#: Option groups of ``--help``, by where an option's field lives.
_GROUPS = (("what each window shows", True), ("input, output and how it runs", False))


def _add_options(p: argparse.ArgumentParser, *, image_only: bool = False) -> None:
    """One flag per registered option (only the image options for the demo)."""
    image = set(image_option_names())
    groups = {is_image: p.add_argument_group(title) for title, is_image in _GROUPS}
    for opt in registry():
        if opt.cli is None or (image_only and opt.name not in image
                               and opt.name not in ("backend", "progress")):
            continue
        flags = [opt.cli] + ([opt.cli_short] if opt.cli_short else [])
        kwargs = dict(dest=opt.name, help=opt.help)
        if opt.negate:
            kwargs.update(action="store_const", const=False, default=opt.default)
        elif opt.is_flag:
            kwargs.update(action="store_true", default=opt.default)
        else:
            kwargs.update(type=opt.cli_type, default=opt.default, metavar=opt.metavar,
                          choices=opt.choices)
        groups[opt.name in image].add_argument(*flags, **kwargs)


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
    _add_options(p)
    p.add_argument("--version", action="version", version=f"flowtrace_gpu {__version__}")
    return p


def _demo_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowtrace demo",
        description="Generate a seeded synthetic movie of tracer particles in a cellular "
                    "flow, trace it (30-frame windows, median subtracted unless another "
                    "step is asked for) and write the pathline images and a side-by-side "
                    "preview.png.")
    p.add_argument("out_dir", metavar="OUT_DIR", nargs="?", default="demo_output")
    p.add_argument("--n-frames", type=int, default=None, metavar="N",
                   help="frames of the synthetic movie (default 240)")
    p.add_argument("--size", type=int, default=None, metavar="PIXELS",
                   help="side of its square frames (default 256)")
    _add_options(p, image_only=True)
    return p


def _batch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowtrace batch",
        description="Trace many recordings on a dask cluster, one task per recording: "
                    "SOURCE rec.tif is written to OUT_ROOT/rec/, as 'flowtrace rec.tif FRAMES "
                    "OUT_ROOT/rec' would. Without --scheduler a local cluster of --workers "
                    "processes runs them. Needs pip install 'flowtrace-gpu[dask]'.",
        epilog="Example: flowtrace batch 'archive/*.tif' 30 pathlines --subtract-median")
    p.add_argument("sources", metavar="SOURCE", nargs="+",
                   help="recordings, or glob patterns (quoted: 'archive/*.tif')")
    p.add_argument("frames", metavar="FRAMES", type=int, help="frames per window (frames_to_merge)")
    p.add_argument("out_root", metavar="OUT_ROOT", help="one folder per recording is written here")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on the dask cluster at this scheduler address (tcp://host:8786)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes of the local cluster (default: the machine's cores)")
    p.add_argument("--no-resume", dest="batch_resume", action="store_false",
                   help="trace every recording again, even those whose outputs are complete "
                        "(a batch resumes by default: --resume is implied)")
    _add_options(p)
    return p


def _info_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowtrace info",
        description="What a recording holds, from its headers: format, frames, size, "
                    "channels, dtype, bit depth, frame rate and duration, the trigger "
                    "(cine), the Bayer pattern and the bytes on disk.",
        epilog="Example: flowtrace info shot.cine --json")
    p.add_argument("source", metavar="SOURCE",
                   help="folder of frames, multi-page .tif, video, Photron .mraw/.cih/.cihx, "
                        "Phantom .cine or zarr array")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (keys include frames, height, width, dtype, "
                        "fps (null when unknown) and bit_depth)")
    return p


def subcommands() -> dict:
    """``flowtrace NAME ...``: NAME -> (its argument parser, the function that runs it)."""
    return {"demo": (_demo_parser, _demo), "batch": (_batch_parser, _batch),
            "info": (_info_parser, _info)}


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    notes = _NoteHandler()
    logger = logging.getLogger("flowtrace_gpu")
    logger.addHandler(notes)
    level, logger.level = logger.level, logging.INFO
    try:
        if argv[:1] and argv[0] in subcommands():
            parser, command = subcommands()[argv[0]]
            return command(parser().parse_args(argv[1:]))
        args = _parser().parse_args(argv)
        if args.progress is False:
            notes.setLevel(logging.WARNING)
        return _trace(args)
    except RunInterrupted as exc:
        print(f"flowtrace: {exc}", file=sys.stderr)
        return exc.exit_status
    except IncompleteRunError as exc:
        print(f"flowtrace: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FlowtraceError as exc:
        print(f"flowtrace: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before a run started: nothing written
        print("flowtrace: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # outside a run's writes (which name their file): e.g. a vanished input
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"flowtrace: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        logger.removeHandler(notes)
        logger.level = level


class _NoteHandler(logging.StreamHandler):
    """The library's notes as ``flowtrace: ...`` lines on stderr (the stream of the moment)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("flowtrace: %(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _options(args) -> dict:
    """The registered options the parser filled in, by name."""
    return {opt.name: getattr(args, opt.name) for opt in registry() if hasattr(args, opt.name)}


def _trace(args) -> int:
    from .api import flowtrace

    options = _options(args)
    result = flowtrace(args.source, args.frames, args.out_dir, **options)
    if options["progress"] is not False:
        if isinstance(result, list) and options["resume"]:
            where = result[0].parent if result else args.out_dir
            print(f"flowtrace: finished: {len(result)} images in {where}", file=sys.stderr)
        elif isinstance(result, list):
            where = result[0].parent if result else args.out_dir
            print(f"flowtrace: wrote {len(result)} images to {where}", file=sys.stderr)
        else:
            print(f"flowtrace: wrote {result}", file=sys.stderr)
    return 0


def _demo(args) -> int:
    from .synthetic import run_demo

    options = _options(args)
    if not any(options[name] for name in step_flags()):
        options["subtract_median"] = True  # the demo's default view
    sizes = {k: v for k, v in (("n_frames", args.n_frames), ("size", args.size)) if v is not None}
    result = run_demo(args.out_dir, **sizes, **options)
    print(f"flowtrace demo: traced {result['n_frames']} synthetic frames into "
          f"{result['n_images']} images in {result['pathlines']}; preview: {result['preview']}")
    return 0


def _batch(args) -> int:
    from .scaleout.batch import BatchFailed, flowtrace_batch

    defaults = {opt.name: opt.default for opt in registry()}
    # Defaults are flowtrace's own; leaving them out lets the batch size max_cores.
    options = {k: v for k, v in _options(args).items() if v != defaults[k]}
    progress = options.pop("progress", None)
    options.pop("resume", None)  # a batch resumes unless --no-resume
    try:
        flowtrace_batch(args.sources, args.frames, args.out_root, client=args.scheduler,
                        workers=args.workers, resume=args.batch_resume, progress=progress,
                        **options)
    except BatchFailed:
        return EXIT_FAILED  # the summary, naming each failure, is on stderr already
    return 0


def _info(args) -> int:
    import json

    from .io.info import recording_info

    info = recording_info(args.source)
    print(json.dumps(info.to_dict()) if args.json else info.to_text())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
