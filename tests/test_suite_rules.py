"""Rules the test suite keeps, checked on its own source.

- A property test asserts on every example: it rejects an example with
  ``assume()``, never by returning early (an early return passes silently).
- Test files import helpers from helper modules or the conftest, never from
  another test file (pytest would collect its tests twice, and a rename breaks it).
"""

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FILES = sorted(TESTS.rglob("*.py"))


def _is_property(node):
    return any("given" in ast.unparse(d) for d in node.decorator_list)


def _returns(function):
    """The return statements of ``function`` itself (not of functions defined inside it)."""
    stack, found = list(function.body), []
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return):
            found.append(node.lineno)
        stack.extend(ast.iter_child_nodes(node))
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_property_tests_never_return_early(path):
    tree = ast.parse(path.read_text())
    early = [f"{node.name} line {line}" for node in ast.walk(tree)
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test")
             and _is_property(node) for line in _returns(node)]
    assert not early, f"{path.name}: use assume() instead of return in {early}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_test_file_imports_another(path):
    tree = ast.parse(path.read_text())
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module]
    assert not [n for n in names if n.split(".")[0].startswith("test_")], path.name


def test_the_rules_see_a_bad_example():
    source = ("from hypothesis import given\n@given(x=1)\ndef test_x(x):\n"
              "    def inner():\n        return 1\n    if x:\n        return\n    assert x\n")
    function = ast.parse(source).body[1]
    assert _is_property(function) and _returns(function) == [7]
