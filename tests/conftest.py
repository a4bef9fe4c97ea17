import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from flowtrace_gpu import available_backends

# Hypothesis profiles: "ci" (CI=true: more examples, derandomized so a red run
# reproduces), "dev" (default: quick), "thorough" (before a release). Choose
# with HYPOTHESIS_PROFILE=...; a test's own @settings override the profile.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=25, **_COMMON)
settings.register_profile("thorough", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

#: The repository, and the shared data beside it (the original's outputs, real camera files).
ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
REAL = ROOT.parent / "shared" / "real"


@pytest.fixture(autouse=True)
def _fresh_core_split(monkeypatch):
    """Each test's runs measure their thread split afresh (no earlier test's memory)."""
    from flowtrace_gpu.engine import thread_split as core_split

    monkeypatch.setattr(core_split, "_SETTLED", {})
BACKENDS = available_backends()


def reference_cases():
    if not (REFERENCE / "cases.json").is_file():
        return {}
    return json.loads((REFERENCE / "cases.json").read_text())


@pytest.fixture(scope="session")
def reference_frames():
    """The original's 62-frame sample recording, as one (62, 150, 150) array."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE} (it lives in ../shared)")
    import tifffile

    files = sorted((REFERENCE / "sample_data").glob("*.tif"))
    return np.stack([tifffile.imread(f) for f in files])


def read_png(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def assert_same_images(got: dict, expected: dict, keep: Path) -> None:
    """The image files ``got`` (name -> bytes) are ``expected``'s, byte for byte.

    For outputs of two runs (resumed, interrupted, on a cluster): the same
    options write the same bytes in every process and thread, which needs
    care with ISA-L (:func:`flowtrace_gpu.io.png.isal_stream`). A pair that
    differs is kept in ``keep``, and the failure says whether the pixels
    (decoded as PNG or TIFF, by the name) differ too or only the encoding.
    """
    import io

    import tifffile

    assert sorted(got) == sorted(expected), sorted(set(got) ^ set(expected))[:5]
    differing = []
    for name in sorted(n for n in expected if got[n] != expected[n]):
        decode = tifffile.imread if name.endswith((".tif", ".tiff")) else read_png
        a, b = (decode(io.BytesIO(side[name])) for side in (got, expected))
        same = a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        Path(keep).mkdir(parents=True, exist_ok=True)
        for side, files in (("got", got), ("expected", expected)):
            (Path(keep) / f"{side}_{name}").write_bytes(files[name])
        differing.append(f"{name} ({'same pixels' if same else 'different pixels'})")
    assert not differing, f"files differ: {differing}; both kept in {keep}"
