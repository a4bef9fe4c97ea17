"""Every ```python block of README.md runs, in a folder holding a small sample_data/."""

import re
from pathlib import Path

import pytest
import tifffile

from flowtrace_gpu.synthetic import synthetic_movie

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture
def sample_folder(tmp_path, monkeypatch):
    data = tmp_path / "sample_data"
    data.mkdir()
    for i, frame in enumerate(synthetic_movie(40, (48, 48), n_particles=20)):
        tifffile.imwrite(data / f"testdata{i:03d}.tif", frame)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWTRACE_BACKEND", "numpy")
    return tmp_path


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, sample_folder):
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})
