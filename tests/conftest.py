import json
from pathlib import Path

import numpy as np
import pytest

from flowtrace_gpu import available_backends

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
