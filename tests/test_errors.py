"""Bad input: a FlowtraceError naming the problem and the fix, before any output."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from flowtrace_gpu import FlowtraceError, flowtrace, flowtrace_array
from flowtrace_gpu.cli import main


@pytest.fixture
def frames_dir(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        tifffile.imwrite(d / f"f{i:02d}.tif", rng.integers(0, 255, (8, 9), dtype=np.uint8))
    return d


def _no_outputs(*dirs):
    return all(not list(d.glob("*streamlines*")) for d in dirs if d.exists())


def check_both(args, kwargs, match, capsys, cli_args):
    """The API raises FlowtraceError; the CLI prints one line and exits 2."""
    with pytest.raises(FlowtraceError, match=match):
        flowtrace(*args, **kwargs)
    capsys.readouterr()
    assert main([str(a) for a in cli_args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("flowtrace: error: ")
    assert "Traceback" not in err


def test_error_is_a_value_error():
    assert issubclass(FlowtraceError, ValueError)


def test_missing_image_dir(tmp_path, capsys):
    missing = tmp_path / "nope"
    check_both((missing, 3, tmp_path / "out"), {}, "does not exist", capsys,
               [missing, 3, tmp_path / "out"])
    assert not (tmp_path / "out").exists()


def test_source_of_unsupported_kind(frames_dir, capsys, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a movie")
    check_both((f, 3, tmp_path / "o"), {}, r"notes\.txt.*not supported.*a folder of frames",
               capsys, [f, 3, tmp_path / "o"])


def test_single_page_tiff_is_a_one_frame_stack(frames_dir, capsys, tmp_path):
    f = frames_dir / "f00.tif"
    check_both((f, 3, tmp_path / "o"), {}, "only 1 frames remain", capsys, [f, 3, tmp_path / "o"])


def test_image_dir_without_images(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    check_both((empty, 3), {}, "holds no images", capsys, [empty, 3])


@pytest.mark.parametrize("bad", [0, -2])
def test_frames_to_merge_below_one(frames_dir, capsys, bad, tmp_path):
    check_both((frames_dir, bad, tmp_path / "o"), {}, "frames_to_merge must be >= 1", capsys,
               [frames_dir, bad, tmp_path / "o"])


def test_frames_to_merge_too_long_after_skip(frames_dir, capsys, tmp_path):
    check_both((frames_dir, 4, tmp_path / "o"), {"frames_to_skip": 2},
               r"frames_to_merge=4 but only 3 frames remain after frames_to_skip=2; use at most 3",
               capsys, [frames_dir, 4, tmp_path / "o", "--frames-to-skip", 2])
    assert _no_outputs(tmp_path / "o")


@pytest.mark.parametrize("order,match", [(0, "diff_order must be >= 1"),
                                          (3, "diff_order=3 leaves no frames")])
def test_bad_diff_order(frames_dir, capsys, order, match, tmp_path):
    check_both((frames_dir, 3, tmp_path / "o"), {"take_diff": True, "diff_order": order}, match,
               capsys, [frames_dir, 3, tmp_path / "o", "--take-diff", "--diff-order", order])


def test_frame_of_another_shape_is_named(frames_dir, capsys, tmp_path):
    tifffile.imwrite(frames_dir / "f03.tif", np.zeros((8, 10), np.uint8))
    check_both((frames_dir, 2, tmp_path / "o"), {}, r"f03\.tif is \(8, 10\) uint8", capsys,
               [frames_dir, 2, tmp_path / "o"])
    assert _no_outputs(tmp_path / "o")


def test_frame_of_another_dtype_is_named(frames_dir, capsys, tmp_path):
    tifffile.imwrite(frames_dir / "f04.tif", np.zeros((8, 9), np.uint16))
    check_both((frames_dir, 2, tmp_path / "o"), {}, r"f04\.tif is \(8, 9\) uint16", capsys,
               [frames_dir, 2, tmp_path / "o"])


def test_undecodable_file_is_named(frames_dir, capsys, tmp_path):
    (frames_dir / "f02.tif").write_bytes(b"this is not a tiff")
    check_both((frames_dir, 2, tmp_path / "o"), {}, r"cannot decode image file .*f02\.tif", capsys,
               [frames_dir, 2, tmp_path / "o"])
    assert _no_outputs(tmp_path / "o")


def test_out_dir_not_writable(frames_dir, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "sub"
    check_both((frames_dir, 2, out), {}, "out_dir .* not writable", capsys, [frames_dir, 2, out])
    check_both((frames_dir, 2, blocker), {}, "is a file, not a directory", capsys,
               [frames_dir, 2, blocker])
    assert blocker.read_text() == "x"


def test_unknown_backend(frames_dir, tmp_path):
    with pytest.raises(FlowtraceError, match="unknown backend 'tpu'"):
        flowtrace(frames_dir, 2, tmp_path / "o", backend="tpu")


@pytest.mark.parametrize("kwargs,match", [
    ({"frames_to_skip": 0}, "frames_to_skip must be >= 1"),
    ({"max_cores": 0}, "max_cores must be >= 1"),
    ({"windows": "rolling"}, "windows must be one of"),
    ({"subtract_median": "yes"}, "subtract_median must be True or False"),
])
def test_bad_parameters(frames_dir, kwargs, match, tmp_path):
    with pytest.raises(FlowtraceError, match=match):
        flowtrace(frames_dir, 2, tmp_path / "o", **kwargs)


@pytest.mark.parametrize("frames,match", [
    (np.zeros((4, 5)), r"shaped \(N, H, W\) or \(N, H, W, C\)"),
    (np.zeros((4, 5, 5), dtype=complex), "integer or float dtype"),
    (np.zeros((0, 5, 5)), "no frames"),
])
def test_bad_arrays(frames, match):
    with pytest.raises(FlowtraceError, match=match):
        flowtrace_array(frames, 1)


def test_color_series_needs_three_channels():
    with pytest.raises(FlowtraceError, match="color_series"):
        flowtrace_array(np.zeros((4, 3, 3, 4), np.uint8), 2, color_series=True)


@pytest.mark.parametrize("var,value", [("FLOWTRACE_PNG_LEVEL", "10"), ("FLOWTRACE_PREFETCH", "0"),
                                       ("FLOWTRACE_BACKEND", "gpu"), ("FLOWTRACE_NUMBA_CHUNK", "x")])
def test_bad_environment_variable_is_refused_before_any_output(tmp_path, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    movie = np.zeros((4, 3, 3), np.uint8)
    with pytest.raises(FlowtraceError, match=var):
        flowtrace_array(movie, 2)


def test_config_table_lists_every_environment_variable():
    from flowtrace_gpu import config

    table = config.table()
    for var in config.ENV_VARS:
        assert f"`{var}`" in table
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert table in readme, "README's environment table differs from config.table(); paste it"
