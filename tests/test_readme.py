"""Every ```python block of README.md runs, in a folder holding a small sample_data/,
and the values its comments state are the values it gets.

A block runs one statement at a time. A comment after a statement states a value:

- after ``print(...)``: the printed line, exactly; or ``<literal> each``: every
  item printed holds that literal. Text after a ``;`` is prose.
- after ``name = ...``: ``(d0, d1, ...) dtype`` anywhere in it is the shape and
  dtype of ``name``; a comment that starts with a dtype name states the dtype.
"""

import ast
import contextlib
import io
import re
import tokenize
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from flowtrace_gpu.synthetic import synthetic_movie

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
SHAPE_AND_DTYPE = re.compile(r"\((\d+(?:, *\d+)*)\) +(\w+)")


@pytest.fixture
def sample_folder(tmp_path, monkeypatch):
    data = tmp_path / "sample_data"
    data.mkdir()
    for i, frame in enumerate(synthetic_movie(40, (48, 48), n_particles=20)):
        tifffile.imwrite(data / f"testdata{i:03d}.tif", frame)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWTRACE_BACKEND", "numpy")
    return tmp_path


def _comments(source):
    """line number -> the text of the comment that ends it."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}


def _dtype(name):
    """The dtype a word names by its canonical name ('uint8', 'float32'), else None."""
    with warnings.catch_warnings():  # deprecated aliases ('a') are words too
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            dtype = np.dtype(name)
        except TypeError:
            return None
    return dtype if dtype.name == name else None


def _is_print(stmt):
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "print")


def check_print(printed, comment):
    """Assert that the printed text is what ``comment`` states; returns 1 (one claim checked)."""
    claim = comment.split(";")[0].strip()
    if claim.endswith(" each"):
        value = ast.literal_eval(claim[:-len(" each")])
        items = ast.literal_eval(printed)
        assert items, f"printed nothing to hold {value!r}: {printed!r}"
        for item in items:
            assert value == item or (isinstance(item, tuple) and value in item), (
                f"{item!r} does not hold {value!r}, as '# {comment}' states")
    else:
        assert " ".join(printed.split()) == " ".join(claim.split()), (
            f"printed {printed!r}, the comment states {claim!r}")
    return 1


def check_assignment(value, comment):
    """Assert the shape and dtype ``comment`` states of ``value``; returns the claims checked."""
    match = SHAPE_AND_DTYPE.search(comment)
    if match and _dtype(match.group(2)) is not None:
        shape = tuple(int(d) for d in match.group(1).split(","))
        assert tuple(value.shape) == shape, f"shape {value.shape}, the comment states {shape}"
        assert value.dtype == _dtype(match.group(2)), f"dtype {value.dtype}, comment: {comment!r}"
        return 1
    first = re.match(r"\w+", comment)
    if first and _dtype(first.group()) is not None and hasattr(value, "dtype"):
        assert value.dtype == _dtype(first.group()), f"dtype {value.dtype}, comment: {comment!r}"
        return 1
    return 0


def run_block(source, name):
    """Run ``source`` statement by statement, checking stated values; returns the claims checked."""
    comments = _comments(source)
    namespace = {}
    checked = 0
    for stmt in ast.parse(source).body:
        code = compile(ast.Module([stmt], type_ignores=[]), name, "exec")
        comment = comments.get(stmt.end_lineno)
        if comment and _is_print(stmt):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
            checked += check_print(out.getvalue().strip(), comment)
            continue
        exec(code, namespace)
        if (comment and isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            checked += check_assignment(namespace[stmt.targets[0].id], comment)
    return checked


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_and_gets_what_it_states(index, sample_folder):
    checked = run_block(BLOCKS[index], f"README.md python block {index}")
    prints = sum(_is_print(s) and s.end_lineno in _comments(BLOCKS[index])
                 for s in ast.parse(BLOCKS[index]).body)
    assert checked >= prints  # every commented print is a claim checked


def test_the_checker_catches_a_wrong_claim(sample_folder):
    # The checker itself: a stated shape, dtype or printed value that is not the one got fails.
    assert run_block("import numpy as np\nx = np.zeros((2, 3), np.uint8)  # (2, 3) uint8\n"
                     "print(x.shape, x.dtype)  # (2, 3) uint8\n"
                     "print([('a', 'done'), ('b', 'done')])  # 'done' each; prose\n", "ok") == 3
    for wrong in ("x = np.zeros((2, 3), np.uint8)  # (2, 4) uint8",
                  "x = np.zeros((2, 3), np.uint8)  # (2, 3) uint16",
                  "x = np.zeros((2, 3), np.uint8)  # float32, prose",
                  "print(np.zeros((2, 3)).shape)  # (3, 2)",
                  "print([('a', 'done'), ('b', 'failed')])  # 'done' each"):
        with pytest.raises(AssertionError):
            run_block("import numpy as np\n" + wrong + "\n", "wrong")
