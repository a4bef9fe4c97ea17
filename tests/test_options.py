"""The option registry: every option has its API keyword and its CLI flag (docs: tests/test_docs.py)."""

import inspect

import numpy as np
import pytest

from flowtrace_gpu import FlowtraceError, flowtrace, flowtrace_array, flowtrace_dask
from flowtrace_gpu.cli import _demo_parser, _parser
from flowtrace_gpu.options import (
    FLOWTRACE,
    FLOWTRACE_ARRAY,
    FLOWTRACE_DASK,
    IMAGE_CALLS,
    TraceOptions,  # noqa: E402
    image_option_names,
    registry,
    step_flags,
)

CALLS = {FLOWTRACE: flowtrace, FLOWTRACE_ARRAY: flowtrace_array, FLOWTRACE_DASK: flowtrace_dask}
#: Parameters that are not options: what to trace and where to (and a call's own extras).
POSITIONAL = {FLOWTRACE: {"image_dir", "frames_to_merge", "out_dir"},
              FLOWTRACE_ARRAY: {"frames", "frames_to_merge"},
              FLOWTRACE_DASK: {"frames", "frames_to_merge", "block"}}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_signature_holds_exactly_the_registered_options(call):
    params = inspect.signature(CALLS[call]).parameters
    wanted = {o.name: o for o in registry() if call in o.calls}
    assert set(params) - POSITIONAL[call] == set(wanted), "signature and registry differ"
    for name, opt in wanted.items():
        assert params[name].default == opt.default, f"{call}({name}=...) default != registry's"


@pytest.mark.parametrize("call", sorted(CALLS))
def test_docstring_documents_every_option(call):
    doc = inspect.getdoc(CALLS[call])
    for opt in registry():
        if call in opt.calls:
            assert opt.name in doc, f"{call}'s docstring does not mention {opt.name}"


@pytest.mark.parametrize("func", [flowtrace_array, flowtrace_dask])
def test_array_calls_take_every_option_that_shapes_the_images(func):
    for name in image_option_names():
        assert call_takes(func, name), name
    assert "grayscale" in image_option_names()


def test_flowtrace_dask_takes_the_backend_but_leaves_threads_to_dask():
    params = inspect.signature(flowtrace_dask).parameters
    assert {"backend", "device", "frames_to_skip"} <= set(params)
    assert not {"use_parallel", "max_cores", "progress"} & set(params)


def call_takes(func, name):
    return name in inspect.signature(func).parameters


def _flags(parser):
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_every_option_has_a_cli_flag_and_every_flag_an_option():
    flags = _flags(_parser())
    names = {o.name for o in registry()}
    for opt in registry():
        assert opt.cli in flags, f"{opt.name} has no command-line flag"
        assert flags[opt.cli].dest == opt.name
    for flag, action in flags.items():
        if action.dest not in ("help", "version"):
            assert action.dest in names, f"CLI flag {flag} has no registered option"


def test_demo_takes_every_image_option():
    flags = _flags(_demo_parser())
    for opt in registry():
        if opt.name in image_option_names():
            assert opt.cli in flags


def test_cli_parses_to_the_api_values():
    args = _parser().parse_args(["src", "5", "--colormap", "#000000,#ffffff", "--color-series",
                                 "--no-parallel", "-q", "--normalize", "global",
                                 "--frames-to-skip", "2", "--fps", "12.5"])
    assert args.colormap == ["#000000", "#ffffff"] and args.color_series is True
    assert args.use_parallel is False and args.progress is False
    assert args.normalize == "global" and args.frames_to_skip == 2 and args.fps == 12.5
    defaults = _parser().parse_args(["src", "5"])
    for opt in registry():
        assert getattr(defaults, opt.name) == opt.default, opt.name


def test_trace_options_are_keyword_only_and_checked():
    with pytest.raises(TypeError):
        TraceOptions(True)  # noqa: FBT003 - positional on purpose
    for name in step_flags():
        with pytest.raises(FlowtraceError, match=name):
            TraceOptions(**{name: 1})
    assert TraceOptions(diff_order=np.int64(2)).diff_order == 2


@pytest.mark.parametrize("kwargs,match", [
    (dict(frames_to_merge=True), "frames_to_merge"),
    (dict(diff_order=True, take_diff=True), "diff_order"),
    (dict(frames_to_skip=2.0), "frames_to_skip"),
    (dict(max_cores=0), "max_cores"),
    (dict(windows="every"), "windows"),
    (dict(bit_depth=17), "bit_depth"),
    (dict(progress="yes"), "progress"),
])
def test_bad_values_name_the_option(kwargs, match):
    args = {"frames_to_merge": 2, **kwargs}
    with pytest.raises(FlowtraceError, match=match):
        flowtrace_array(np.zeros((4, 2, 2), np.uint8), **args)


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), -1.0, 0, True])
def test_fps_must_be_finite_and_positive(tmp_path, fps):
    with pytest.raises(FlowtraceError, match="fps"):
        flowtrace(tmp_path, 2, tmp_path / "x.mp4", fps=fps)


def test_grayscale_on_arrays_equals_tracing_the_luma():
    from flowtrace_gpu.io.grayscale import luma

    rgb = np.random.default_rng(3).integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)
    got = flowtrace_array(rgb, 3, grayscale=True, backend="numpy")
    expected = flowtrace_array(np.stack([luma(f) for f in rgb]), 3, backend="numpy")
    assert got.shape == (4, 5, 4)
    np.testing.assert_array_equal(got, expected)


def test_options_declared_once_in_calls_of_both_kinds():
    # Every option belongs to flowtrace; image options to every call that makes images.
    for opt in registry():
        assert FLOWTRACE in opt.calls
        if opt.name in image_option_names():
            assert opt.calls == IMAGE_CALLS
