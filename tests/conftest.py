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

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
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
