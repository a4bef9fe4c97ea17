"""The docs against the code: README.md and docs/ say what the package does.

- Every ```python block of README.md and docs/**/*.md runs (in a folder holding
  a small sample_data/ of 40 frames), and the values its comments state are
  checked: a ``print(...)  # VALUE`` line must print VALUE (text after " — " is
  an explanation), and ``name = ...  # (shape) dtype``
  must give an array of that shape (and dtype). A block that cannot run in a
  test (a GUI) says why in ``<!-- not run: why -->`` right above it, and compiles.
- Every ``flowtrace ...`` command line in their ```bash blocks parses.
- The generated parts of the pages (options, environment variables, ``--help``,
  performance tables) come from the code, and README's performance table is
  bench/report.py's.
- Links between the pages resolve, and every page is in the site's nav.
- No page, comment or benchmark output tells the story of its measurements
  (sessions, lent machines, numbered calls, issue numbers, dated runs).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import tifffile

from flowtrace_gpu.synthetic import synthetic_movie

from conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


#: Put right above a ```python block that cannot run in a test (a GUI, a cluster of
#: one's own): ``<!-- not run: why -->``. Such a block must still compile.
NOT_RUN = re.compile(r"<!-- not run: (.*?) -->\n$")


def _blocks(lang: str, *, runnable: bool = True) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        fences = re.finditer(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)
        for i, m in enumerate(fences):
            marked = NOT_RUN.search(text[max(0, m.start() - 200):m.start()])
            if marked is None if runnable else marked is not None:
                found.append((f"{_rel(page)}#{lang}{i}", m.group(1)))
    return found


PYTHON = _blocks("python")
PYTHON_NOT_RUN = _blocks("python", runnable=False)
BASH = _blocks("bash")


def _hooks():
    sys.path.insert(0, str(DOCS))
    try:
        import hooks
    finally:
        sys.path.remove(str(DOCS))
    return hooks


def _report():
    return _hooks()._report()


# ------------------------------------------------------------------ examples run

PRINT = re.compile(r"^(\s*)print\((.*)\)\s*#\s*(.+?)\s*$")
SHAPE = re.compile(r"^(\s*)(\w+) = .*#\s*(\(\d+(?:, \d+)*\))(?:\s+([a-z]+\d*))?\b")


def checked_source(block: str) -> str:
    """The block with its stated values turned into checks (see the module docstring)."""
    out = []
    for line in block.splitlines():
        if m := PRINT.match(line):
            indent, args, expected = m.groups()
            out.append(f"{indent}__check_print__({expected!r}, {args})")
        elif m := SHAPE.match(line):
            indent, name, shape, dtype = m.groups()
            out.append(line)
            out.append(f"{indent}__check_shape__({name!r}, {name}, {shape!r}, {dtype!r})")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _check_print(expected, *args):
    expected = expected.split(" — ")[0]
    got = " ".join(str(a) for a in args)
    assert got.split() == expected.split(), f"printed {got!r}, the comment says {expected!r}"


def _check_shape(name, value, shape, dtype):
    assert str(tuple(value.shape)) == shape, f"{name}.shape is {value.shape}, comment: {shape}"
    if dtype:
        assert str(value.dtype) == dtype, f"{name}.dtype is {value.dtype}, comment: {dtype}"


@pytest.fixture
def sample_folder(tmp_path, monkeypatch):
    data = tmp_path / "sample_data"
    data.mkdir()
    for i, frame in enumerate(synthetic_movie(40, (48, 48), n_particles=20)):
        tifffile.imwrite(data / f"testdata{i:03d}.tif", frame)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWTRACE_BACKEND", "numpy")
    return tmp_path


def test_the_pages_have_examples():
    assert len([n for n, _ in PYTHON if n.startswith("README")]) >= 1
    assert len(PYTHON) >= 12


def test_stated_values_become_checks():
    source = checked_source("x = f()                 # (3, 4) uint8\nprint(len(x))   # 3\n")
    assert "__check_shape__('x', x, '(3, 4)', 'uint8')" in source
    assert "__check_print__('3', len(x))" in source
    with pytest.raises(AssertionError, match="comment says"):
        exec(checked_source("print(1 + 1)  # 3\n"), {"__check_print__": _check_print})
    exec(checked_source("print(1 + 1)  # 2 — one and one\n"), {"__check_print__": _check_print})


@pytest.mark.parametrize("name,block", PYTHON, ids=[n for n, _ in PYTHON])
def test_example_runs_and_states_true_values(name, block, sample_folder):
    code = compile(checked_source(block), name, "exec")
    exec(code, {"__check_print__": _check_print, "__check_shape__": _check_shape})


def test_examples_that_are_not_run_compile_and_say_why():
    for name, block in PYTHON_NOT_RUN:
        page = ROOT / name.split("#")[0]
        assert all(m.strip() for m in re.findall(r"<!-- not run: (.*?) -->", page.read_text()))
        compile(block, name, "exec")
    assert len(PYTHON_NOT_RUN) <= len(PYTHON) // 4, "most examples must run"


def _command_lines():
    for name, block in BASH:
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["python", "-m", "flowtrace_gpu"]:
                words = ["flowtrace", *words[3:]]
            if words[:1] != ["flowtrace"] or "[" in line:
                continue  # not a flowtrace command, or a synopsis with [optional] parts
            yield name, words[1:]


COMMANDS = list(_command_lines())


def test_the_pages_have_command_lines():
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize("name,argv", COMMANDS, ids=[" ".join(a) for _, a in COMMANDS])
def test_command_line_parses(name, argv):
    from flowtrace_gpu import cli

    if {"--help", "-h", "--version"} & set(argv):
        return
    parser, args = cli._parser, argv
    if argv[0] in cli.subcommands():
        parser, args = cli.subcommands()[argv[0]][0], argv[1:]
    try:
        parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{name}: flowtrace {' '.join(argv)} does not parse (exit {exc.code})")


# ------------------------------------------------------------- generated parts

def _rendered(page: str) -> str:
    path = DOCS / page
    return _hooks().on_page_markdown(path.read_text(), None, None, None)


def test_options_page_shows_the_generated_options_table():
    from flowtrace_gpu.options import markdown_table, registry

    page = _rendered("guide/options.md")
    assert markdown_table() in page
    for opt in registry():
        assert f"`{opt.name}`" in page and opt.cli in page
    assert "<!-- generated" not in page


def test_options_page_shows_every_environment_variable():
    from flowtrace_gpu import config

    page = _rendered("guide/options.md")
    assert config.table() in page
    for var in config.ENV_VARS:
        assert f"`{var}`" in page


def test_cli_page_shows_the_help_of_every_command():
    from flowtrace_gpu import cli

    page = _rendered("guide/cli.md")
    for parser in (cli._parser(), cli._demo_parser(), cli._batch_parser()):
        assert f"usage: {parser.prog}" in page
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in page, f"{parser.prog} {flag} is missing from the cli page"
    assert "<!-- generated" not in page


def test_every_marker_of_every_page_renders():
    hooks = _hooks()
    for page in DOCS.rglob("*.md"):
        text = page.read_text()
        for m in hooks.MARK.finditer(text):
            assert hooks.generated(m.group(1), m.group(2)).strip(), (page, m.group(0))


def test_published_results_carry_machine_and_command():
    report = _report()
    assert {"e2e-cpu", "e2e-h200", "gpu-h200"} <= set(report.names())
    for name in report.names():
        text = report.render(name)
        assert "**Machine:**" in text and "**Command:** `" in text, name
        assert "|---" in text, name


def test_readme_performance_table_is_the_reports():
    table = _report().readme_table()
    text = README.read_text()
    assert table in text, "README's table differs from bench/report.py; run it with --readme"
    assert "NVIDIA H200" in table and "numba" in table


def test_performance_page_renders_every_published_result():
    page = _rendered("performance.md")
    for name in _report().names():
        assert f"<!-- generated: report {name} -->" in (DOCS / "performance.md").read_text(), name
    assert "**Command:**" in page and "<!-- generated" not in page


def test_api_page_documents_the_public_api():
    import flowtrace_gpu

    page = (DOCS / "api.md").read_text()
    for name in flowtrace_gpu.__all__:
        if name != "__version__":
            assert f"::: flowtrace_gpu.{name}\n" in page, name
    assert "::: flowtrace_gpu.options" in page and "::: flowtrace_gpu.config" in page


# ----------------------------------------------------------- links and nav

def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    head = "\n".join(lines[:8])
    assert "make demo" in head and "make test" in head


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{_rel(page)} links to missing {target}"


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert len(nav) >= 15
    for entry in nav:
        assert (DOCS / entry).is_file(), f"mkdocs.yml names missing docs/{entry}"
    for page in DOCS.rglob("*.md"):
        assert str(page.relative_to(DOCS)) in nav, f"docs/{page.relative_to(DOCS)} is not in nav"


# ------------------------------------------------------- no lab-notebook talk

NOTEBOOK = re.compile(
    r"this session|(next|last|previous|earlier|first|second|third|fourth|fifth) session"
    r"|lent (machine|device|GPU)|borrowed (machine|GPU)"
    r"|\b(first|second|third|fourth|fifth) call\b|\bissue #?\d+|#1\d\b"
    r"|\b20\d\d-[01]\d-[0-3]\d\b", re.I)
SCANNED = [README, *DOCS.rglob("*.md"), *DOCS.rglob("*.py"), *(ROOT / "flowtrace_gpu").rglob("*.py"),
           *(ROOT / "bench").rglob("*.py"), *(ROOT / "bench").rglob("*.sh"),
           *(ROOT / "bench" / "published").glob("*.json"), ROOT / "Makefile", ROOT / "pyproject.toml",
           *(ROOT / ".ci").iterdir(),
           # this file holds the pattern's own examples
           *(p for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name)]


def test_notebook_pattern_catches_the_talk():
    for text in ("Five calls this session", "a lent machine", "the second call ran",
                 "issue #13's targets", "#13's 15x", "run on 2026-11-26", "The next session"):
        assert NOTEBOOK.search(text), text
    for text in ("imported when first needed", "the first window", "dask 2025.1", "F = 13"):
        assert not NOTEBOOK.search(text), text


@pytest.mark.parametrize("path", SCANNED, ids=_rel)
def test_no_lab_notebook_talk(path):
    hits = [f"{_rel(path)}:{n}: {line.strip()}"
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if NOTEBOOK.search(line)]
    assert not hits, "measurement narrative (say the figure, its machine and command):\n" + \
        "\n".join(hits)
