"""The command line: same results as the API, one-line errors, the demo."""

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from flowtrace_gpu.cli import main

from conftest import read_png
from naive import naive_trace


@pytest.fixture
def movie_dir(tmp_path):
    rng = np.random.default_rng(5)
    movie = rng.integers(0, 256, (12, 6, 7), dtype=np.uint8)
    d = tmp_path / "movie"
    d.mkdir()
    for i, frame in enumerate(movie):
        tifffile.imwrite(d / f"frame{i}.tif", frame)  # unpadded: natural order needed
    return d, movie


def test_cli_traces_a_folder(movie_dir, tmp_path, capsys):
    d, movie = movie_dir
    out = tmp_path / "out"
    assert main([str(d), "4", str(out), "--subtract-median", "--frames-to-skip", "2",
                 "--backend", "numpy", "--quiet"]) == 0
    expected = naive_trace(movie, 4, 2, subtract_median=True)
    names = [f"frame{i}_streamlines_frames4.png" for i in range(0, 12, 2)][:len(expected)]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["flowtrace.json"])
    for name, image in zip(names, expected):
        np.testing.assert_array_equal(read_png(out / name), image)
    assert capsys.readouterr().err == ""


def test_cli_same_dir_default_and_rerun_ignores_outputs(movie_dir, capsys):
    d, movie = movie_dir
    assert main([str(d), "3", "--color-series", "--windows", "sliding"]) == 0
    assert "wrote 10 images" in capsys.readouterr().err
    # A second run must not take the first run's PNGs for frames.
    assert main([str(d), "3", "--color-series", "--windows", "sliding", "-q"]) == 0
    outputs = sorted(d.glob("*_streamlines_frames3.png"))
    assert len(outputs) == 10
    first = read_png(d / "frame0_streamlines_frames3.png")
    np.testing.assert_array_equal(first, naive_trace(movie, 3, windows="sliding",
                                                     color_series=True)[0])


def test_cli_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["somewhere"])
    assert exc.value.code == 2


def test_module_entry_point_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flowtrace_gpu", str(tmp_path / "missing"), "5"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_writes_pathlines_and_preview(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", str(out), "--backend", "numpy", "-q", "--n-frames", "60",
                 "--size", "96"]) == 0
    images = sorted((out / "pathlines").glob("*.png"))
    frames = sorted((out / "frames").glob("*.tif"))
    assert len(frames) == 60 and len(images) == 60 - 30 + 1
    preview = read_png(out / "preview.png")
    assert preview.shape[1] > 2 * 96 and preview.shape[0] == 96
    # The pathline image is brighter on average than a raw frame: streaks, not dots.
    raw = tifffile.imread(frames[0])
    assert read_png(images[0]).mean() > raw.mean()
    assert "preview" in capsys.readouterr().out


def test_cli_scaling_and_color_options(movie_dir, tmp_path):
    from naive import naive_trace_ext

    d, movie = movie_dir
    out = tmp_path / "o"
    assert main([str(d), "3", str(out), "--normalize", "global", "--fade-tails", "--color-series",
                 "--colormap", "#000000,#ffffff", "--backend", "numpy", "-q"]) == 0
    gray = np.linspace(0, 1, 3)[:, None].repeat(3, axis=1)
    expected = naive_trace_ext(movie, 3, normalize="global", fade_tails=True, colors=gray)
    got = np.stack([read_png(out / f"frame{i}_streamlines_frames3.png") for i in range(len(expected))])
    np.testing.assert_array_equal(got, expected)


def test_cli_movie_in_movie_out(tmp_path):
    import av  # noqa: F401  (a dependency: video support)

    from flowtrace_gpu.io.formats import open_source
    from flowtrace_gpu.synthetic import synthetic_movie

    stack = tmp_path / "stack.tif"
    movie = synthetic_movie(20, (32, 48), n_particles=10)
    tifffile.imwrite(stack, movie)
    out = tmp_path / "paths.mp4"
    assert main([str(stack), "5", str(out), "--fps", "12", "--backend", "numpy", "-q"]) == 0
    video = open_source(out, grayscale=True)
    assert video.n_frames == 20 - 5 + 1 and video.frame_shape == (32, 48)
    assert abs(video.fps - 12) < 1e-6
