"""Zarr arrays in and out: through flowtrace() and through flowtrace_dask."""

import numpy as np
import pytest

from flowtrace_gpu import FlowtraceError, flowtrace, flowtrace_array, flowtrace_dask
from flowtrace_gpu.synthetic import synthetic_movie

from faults import ENOSPC, fail_at

da = pytest.importorskip("dask.array", reason="flowtrace_dask needs the [dask] extra")
zarr = pytest.importorskip("zarr", minversion="3.1.3",
                           reason="zarr 3 (the [dask] extra) needs Python 3.11 or later")


def assert_same(got, expected):
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def write_zarr(path, movie, chunks):
    array = zarr.create_array(str(path), shape=movie.shape, chunks=chunks, dtype=movie.dtype)
    array[:] = movie
    return array


@pytest.mark.parametrize("skip", [1, 3])
def test_zarr_in_zarr_out(tmp_path, skip):
    movie = synthetic_movie(50, (20, 24), seed=6)
    write_zarr(tmp_path / "rec.zarr", movie, (7, 20, 24))
    out = flowtrace(tmp_path / "rec.zarr", 6, tmp_path / "out.zarr", frames_to_skip=skip,
                    subtract_median=True, progress=False)
    assert out == tmp_path / "out.zarr"
    images = zarr.open_array(str(out), mode="r")
    assert images.chunks == (1, 20, 24)  # one image per chunk
    expected = flowtrace_array(movie, 6, skip, subtract_median=True, progress=False)
    assert_same(images[:], expected)
    assert_same(da.from_zarr(str(out)).compute(), expected)  # dask reads it as it is
    # The same images through flowtrace_dask, written by dask to a zarr of its blocks.
    lazy = flowtrace_dask(da.from_zarr(str(tmp_path / "rec.zarr")), 6, skip, block=5,
                          subtract_median=True)
    lazy.to_zarr(str(tmp_path / "dask.zarr"))
    assert_same(zarr.open_array(str(tmp_path / "dask.zarr"), mode="r")[:], expected)


def test_zarr_source_names_outputs_and_writes_beside_itself(tmp_path):
    movie = synthetic_movie(12, (8, 8), seed=7)
    write_zarr(tmp_path / "rec.zarr", movie, (12, 8, 8))
    written = flowtrace(tmp_path / "rec.zarr", 10, progress=False)
    assert [p.name for p in written] == [f"rec_{i:02d}_streamlines_frames10.png" for i in range(3)]
    assert all(p.parent == tmp_path for p in written)


def test_zarr_output_is_rewritten_whole(tmp_path):
    movie = synthetic_movie(20, (8, 8), seed=8)
    flowtrace_out = tmp_path / "out.zarr"
    flowtrace_array_images = flowtrace_array(movie, 5, progress=False)
    flowtrace(_tiff(tmp_path, movie), 5, flowtrace_out, progress=False)
    flowtrace(_tiff(tmp_path, movie[:10]), 5, flowtrace_out, progress=False)
    images = zarr.open_array(str(flowtrace_out), mode="r")
    assert_same(images[:], flowtrace_array_images[:6])


def _tiff(folder, movie):
    import tifffile

    path = folder / f"movie{len(movie)}.tif"
    tifffile.imwrite(path, movie)
    return path


def test_zarr_errors_name_the_path(tmp_path):
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    group.create_array("raw", shape=(10, 4, 4), dtype="u1")
    with pytest.raises(FlowtraceError, match=r"zarr group.*group.zarr/raw"):
        flowtrace(tmp_path / "group.zarr", 3, tmp_path / "o")
    write_zarr(tmp_path / "flat.zarr", np.zeros((10, 4), np.uint8), (10, 4))
    with pytest.raises(FlowtraceError, match=r"\(10, 4\)"):
        flowtrace(tmp_path / "flat.zarr", 3, tmp_path / "o")
    (tmp_path / "notes.zarr").mkdir()
    (tmp_path / "notes.zarr" / "notes.txt").write_text("keep me")
    write_zarr(tmp_path / "rec.zarr", np.zeros((10, 4, 4), np.uint8), (5, 4, 4))
    with pytest.raises(FlowtraceError, match="not a zarr array"):
        flowtrace(tmp_path / "rec.zarr", 3, tmp_path / "notes.zarr")
    assert (tmp_path / "notes.zarr" / "notes.txt").read_text() == "keep me"
    with pytest.raises(FlowtraceError, match="format='png' contradicts"):
        flowtrace(tmp_path / "rec.zarr", 3, tmp_path / "x.zarr", format="png")


def test_zarr_output_resumes_image_by_image(tmp_path, monkeypatch):
    from flowtrace_gpu import IncompleteRunError
    from flowtrace_gpu.io.zarr_store import ZarrWriter, chunk_file
    from flowtrace_gpu.runs.manifest import manifest_path, read_manifest

    movie = synthetic_movie(40, (12, 16), seed=12)
    write_zarr(tmp_path / "rec.zarr", movie, (8, 12, 16))
    expected = flowtrace_array(movie, 5, normalize="global", progress=False)
    out = tmp_path / "out.zarr"
    monkeypatch.setattr(ZarrWriter, "write", fail_at(ZarrWriter.write, 12, ENOSPC))
    with pytest.raises(IncompleteRunError, match="images are complete in"):
        flowtrace(tmp_path / "rec.zarr", 5, out, normalize="global", progress=False,
                  use_parallel=False)
    monkeypatch.undo()
    assert manifest_path(out) == tmp_path / "out.zarr.flowtrace.json"  # beside the array
    manifest = read_manifest(out)
    kept = list(manifest.complete_indices())
    assert kept == list(range(12)) and not manifest.is_complete
    stamps = {i: chunk_file(out, i, 3).stat().st_mtime_ns for i in kept}
    chunk_file(out, 20, 3).parent.mkdir(parents=True)
    (chunk_file(out, 20, 3).parent / "0.1f2e.partial").write_bytes(b"half")  # a killed write

    assert flowtrace(tmp_path / "rec.zarr", 5, out, normalize="global", progress=False,
                     resume=True) == out
    assert_same(zarr.open_array(str(out), mode="r")[:], expected)
    assert {i: chunk_file(out, i, 3).stat().st_mtime_ns for i in kept} == stamps  # untouched
    assert read_manifest(out).is_complete
    assert not list(out.rglob("*.partial"))
