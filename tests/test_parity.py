"""The acceptance test: the original's own outputs, pixel for pixel, exactly."""

from pathlib import Path

import numpy as np
import pytest

from flowtrace_gpu import flowtrace, flowtrace_array

from conftest import BACKENDS, REFERENCE, read_png, reference_cases

CASES = reference_cases()
pytestmark = pytest.mark.skipif(
    not CASES, reason=f"reference data not found at {REFERENCE} (it lives in ../shared)"
)


def _reference_images(case):
    return sorted((REFERENCE / "outputs" / case).glob("*.png"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES) or ["none"])
def test_files_match_the_original(case, backend, tmp_path):
    spec = CASES[case]
    written = flowtrace(REFERENCE / spec["input"], spec["frames_to_merge"], tmp_path,
                        frames_to_skip=spec["frames_to_skip"], backend=backend,
                        windows="original", **spec["options"])
    expected = _reference_images(case)
    assert [p.name for p in written] == [p.name for p in expected]
    assert sorted(p.name for p in Path(tmp_path).glob("*.png")) == [p.name for p in expected]
    for mine, theirs in zip(written, expected):
        a, b = read_png(mine).astype(int), read_png(theirs).astype(int)
        assert a.shape == b.shape, mine.name
        np.testing.assert_array_equal(a, b, err_msg=mine.name)


@pytest.mark.parametrize("case", sorted(CASES) or ["none"])
def test_array_api_matches_the_original(case, reference_frames):
    spec = CASES[case]
    images = flowtrace_array(reference_frames, spec["frames_to_merge"], spec["frames_to_skip"],
                             windows="original", **spec["options"])
    expected = np.stack([read_png(p) for p in _reference_images(case)])
    assert images.shape == expected.shape
    np.testing.assert_array_equal(images, expected)


def test_sliding_windows_add_the_frame_the_original_skips(reference_frames):
    # 'sliding' differs from the original exactly where frame F enters the window.
    f = 10
    original = flowtrace_array(reference_frames, f, windows="original", backend="numpy")
    sliding = flowtrace_array(reference_frames, f, backend="numpy")  # the default
    assert len(sliding) == len(original) + 1 == len(reference_frames) - f + 1
    np.testing.assert_array_equal(sliding[0], original[0])
    # Past frame F both slide over the same frames, one step apart.
    np.testing.assert_array_equal(sliding[f + 2:], original[f + 1:])
    assert not np.array_equal(sliding[1], original[1])
