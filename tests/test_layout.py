"""The package's layout: no import cycle, a short top level, private internals.

The layers themselves are an import-linter contract (pyproject.toml, run by
``make lint``); this checks what it does not: cycles between modules,
counting imports inside functions, which import-linter's layers allow
within a layer.
"""

import ast
from pathlib import Path

import flowtrace_gpu

PACKAGE = Path(flowtrace_gpu.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every package module ``name`` imports anywhere in its file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module; `from mod import name` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        deps = imports_of(name, path, known)
        # importing a.b.c runs a/__init__ and a/b/__init__ first: not an edge we count,
        # but a package's own __init__ importing its children is.
        graph[name] = deps
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_among_modules():
    graph = import_graph()
    # A package's __init__ re-exporting its children is the one allowed way up.
    for name in graph:
        graph[name] = {d for d in graph[name] if not name.startswith(d + ".")}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    # The check must not pass only because an import hides in a function.
    known = {"flowtrace_gpu.a", "flowtrace_gpu.b"}
    path = tmp_path / "a.py"
    path.write_text("def f():\n    from .b import x\n")
    assert imports_of("flowtrace_gpu.a", path, known) == {"flowtrace_gpu.b"}
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def test_at_most_ten_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top


def test_subpackages_declare_themselves_internal():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "internal" in doc.splitlines()[0] or "(internal" in doc, init
