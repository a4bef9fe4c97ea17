"""mkdocs hooks: fill the generated parts of the pages when the site is built.

A page marks each part with an HTML comment, ``<!-- generated: NAME [ARG] -->``:

- ``options-table``: :func:`flowtrace_gpu.options.markdown_table`;
- ``env-table``: :func:`flowtrace_gpu.config.table`;
- ``cli-help flowtrace|demo|batch``: the command line's ``--help``;
- ``report NAME``: a table of ``bench/report.py`` from ``bench/published/NAME.json``.

Nothing generated is committed, so the pages cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"<!-- generated: ([\w-]+)(?: ([\w.-]+))? -->")
#: A Sphinx role left in a numpydoc docstring, as mkdocstrings renders it.
ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj):<code>~?([^<]*)</code>")


def _report():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return report


def generated(name: str, arg: str | None) -> str:
    """The Markdown for one marker (also used by tests/test_docs.py)."""
    if name == "options-table":
        from flowtrace_gpu.options import markdown_table

        return markdown_table()
    if name == "env-table":
        from flowtrace_gpu import config

        return config.table()
    if name == "cli-help":
        from flowtrace_gpu import cli

        parser = {"flowtrace": cli._parser, "demo": cli._demo_parser,
                  "batch": cli._batch_parser}[arg]()
        return "```text\n" + _help(parser) + "```"
    if name == "report":
        return _report().render(arg)
    raise ValueError(f"unknown generated part {name!r}")


def _help(parser) -> str:
    import os

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps at $COLUMNS: one width on every machine
    try:
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARK.sub(lambda m: generated(m.group(1), m.group(2)), markdown)


def on_page_content(html: str, page, config, files) -> str:
    """Sphinx roles (``:func:`flowtrace```) read as plain code in the API pages."""
    return ROLE.sub(lambda m: f"<code>{m.group(1)}</code>", html)
