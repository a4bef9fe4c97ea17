"""The published benchmark tables: Markdown from the JSON in bench/published/.

    python bench/report.py                     # every table, as the docs show them
    python bench/report.py NAME                # one table (e2e-cpu, gpu-h200, ...)
    python bench/report.py --readme            # rewrite README's performance table
    python bench/report.py --publish bench/results/e2e.json e2e-cpu --command "..."

A published file is a benchmark's own JSON (bench/results/*.json) plus what
the reader needs to weigh it: ``command`` (what made it), ``machine`` (from
the benchmark, with a human ``label``) and ``load`` (the load average when it
was published; the development machine is shared). Each table is printed with
its machine and its command, and nothing else: history lives in git.

The docs site renders these tables at build time (docs/hooks.py); README's
table is rewritten by ``--readme`` and checked against :func:`readme_table`
by tests/test_docs.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PUBLISHED = HERE / "published"
README = HERE.parent / "README.md"
README_MARK = re.compile(r"(<!-- report: readme -->\n)(.*?)(<!-- /report -->)", re.S)
#: The option sets of the end-to-end tables, in order.
OPTION_SETS = ("default", "subtract_median", "color_series", "median_color")


def load(name: str) -> dict:
    """The published JSON ``bench/published/<name>.json``."""
    path = PUBLISHED / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"report: no published results {path}; see bench/report.py --publish")
    return json.loads(path.read_text())


def names() -> list[str]:
    """Every published result, by name."""
    return sorted(p.stem for p in PUBLISHED.glob("*.json"))


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:#.{digits}g}"


def _ratio(value) -> str:
    return "—" if value is None else f"{value:,.0f}×" if value >= 10 else f"{value:.2f}×"


def source_line(data: dict) -> str:
    """Machine, command and load of one published result, as one paragraph."""
    m = data["machine"]
    label = m.get("label") or f"{m.get('cpus')} cores, {m.get('cpu', 'unknown CPU')}"
    versions = ", ".join(f"{k} {m[k]}" for k in ("python", "numpy", "numba", "cupy") if k in m)
    load = data.get("load") or m.get("load_average")
    parts = [f"**Machine:** {label} ({versions})" if versions else f"**Machine:** {label}",
             f"**Command:** `{data['command']}`"]
    if load:
        parts.append(f"**Load average:** {load}")
    return " · ".join(parts)


def _e2e(data: dict) -> str:
    rows = data["rows"]
    head = (f"{data['frames']} synthetic {data['size']}×{data['size']} uint8 TIFF frames → "
            f"PNG files, F = {data['window']}, ms per output image, median of "
            f"{data.get('repeats', 'interleaved')} interleaved runs.")
    lines = [head, "", "| options | method | ms per image | images/s | ÷ I/O floor | × original |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (_order(r["options"]), rows.index(r))):
        if r["options"].startswith("sample_data"):
            continue
        lines.append(f"| `{r['options']}` | {r['method']} | {_num(r['ms_per_frame'])} | "
                     f"{_num(r.get('fps'))} | {_ratio(r.get('x_io_floor'))} | "
                     f"{_ratio(r.get('x_original'))} |")
    return "\n".join(lines)


def _order(options: str) -> int:
    return OPTION_SETS.index(options) if options in OPTION_SETS else len(OPTION_SETS)


def _gpu(data: dict) -> str:
    lines = [f"{data['size']}×{data['size']} uint8 frames, ms per output image. *kernel*: "
             "`project()` until the device is idle; *step*: push + project + download, one "
             "frame at a time.", "",
             "| mode | F | kernel | step |", "|---|---|---|---|"]
    for r in data["kernels"]:
        lines.append(f"| {r['mode']} | {r['F']} | {_num(r['kernel_ms'])} | {_num(r['step_ms'])} |")
    return "\n".join(lines)


def _kernels(data: dict) -> str:
    results = data["results"]
    columns = sorted({c for row in results.values() for c in row if isinstance(row[c], dict)})
    threads = data.get("threads")
    on = (f"{threads[0]} thread" + ("s" if threads[0] > 1 else "") if threads and len(threads) == 1
          else "the thread counts in the columns" if threads else "all cores")
    lines = [f"{data['shape'][0]}×{data['shape'][1]} frames, ms per output image on a resident "
             f"window, steady state (mean of {data['repeats']} interleaved rounds), on {on}.", "",
             "| movie | dtype | op | F | " + " | ".join(columns) + " |",
             "|---|---|---|---|" + "---|" * len(columns)]
    reference = any("reference_ms" in row for row in results.values())
    if reference:
        lines[-2] += " NumPy reference |"
        lines[-1] += "---|"
    for key, row in results.items():
        movie, dtype, op, f = key.split("/")
        cells = " | ".join(_num(row[c]["ms"]) if c in row else "—" for c in columns)
        ref = f" {_num(row.get('reference_ms'))} |" if reference else ""
        lines.append(f"| {movie} | {dtype} | {op} | {f[1:]} | {cells} |{ref}")
    return "\n".join(lines)


def _png(data: dict) -> str:
    lines = [f"One {data['size']}×{data['size']} image of the synthetic movie, F = 30, "
             "median of 7 encodings; every candidate decoded and compared pixel for pixel.", "",
             "| image | encoder | ms | kB | × Pillow level 6 |", "|---|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| {r['image']} | {r['encoder']} | {_num(r['ms_per_frame'])} | "
                     f"{_num(r['size_kB'])} | {_ratio(r.get('speedup_vs_original'))} |")
    return "\n".join(lines)


RENDER = {"e2e": _e2e, "gpu": _gpu, "kernels": _kernels, "png": _png}


def render(name: str) -> str:
    """One published result as Markdown: what was timed, the table, machine and command."""
    data = load(name)
    return RENDER[data["kind"]](data) + "\n\n" + source_line(data)


def _label(data: dict) -> str:
    return data["machine"].get("short") or data["machine"].get("label", "")


def readme_table() -> str:
    """README's one performance table: end to end on the CPU machine and on the GPU one.

    From ``e2e-cpu`` (numba on the development machine), ``e2e-h200`` (cupy in
    batches of 8, the default, on the GPU host) and ``e2e-h200-numba`` (numba on
    the same host's 16 cores); each row with its own run's I/O floor, the
    commands after the table.
    """
    sources = [("e2e-cpu", ("numba",)), ("e2e-h200", ("cupy, batch 8",)),
               ("e2e-h200-numba", ("numba",))]
    lines = ["| options | machine | backend | ms per image | I/O floor | original | × original |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for options in OPTION_SETS[:3]:
        for name, methods in sources:
            data = load(name)
            group = {r["method"]: r for r in data["rows"] if r["options"] == options}
            floor = group.get("io-floor", {}).get("ms_per_frame")
            original = group.get("original (serial)", {}).get("ms_per_frame")
            for method in methods:
                r = group.get(method)
                if r is None:
                    continue
                lines.append(f"| `{options}` | {_label(data)} | {method} | "
                             f"{_num(r['ms_per_frame'])} | {_num(floor)} | {_num(original)} | "
                             f"{_ratio(r.get('x_original'))} |")
    for name, _ in sources:
        data = load(name)
        avg = data.get("load") or data["machine"].get("load_average")
        notes.append(f"- {data['machine'].get('label', _label(data))}: `{data['command']}`"
                     + (f"; load average {avg}" if avg else ""))
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def rewrite_readme() -> bool:
    """Put :func:`readme_table` into README.md; returns whether it changed."""
    text = README.read_text()
    if not README_MARK.search(text):
        raise SystemExit("report: README.md has no <!-- report: readme --> block")
    new = README_MARK.sub(lambda m: m.group(1) + readme_table() + m.group(3), text)
    README.write_text(new)
    return new != text


def publish(result: Path, name: str, command: str, label: str | None,
            load: str | None = None) -> Path:
    """Copy a benchmark's JSON into bench/published/ with its command, label and load."""
    data = json.loads(Path(result).read_text())
    kinds = {"e2e": "e2e", "gpu": "gpu", "kernels": "kernels", "png": "png"}
    data["kind"] = kinds[Path(result).stem]
    data["command"] = command
    if label:
        data["machine"]["label"] = label
    if load:
        data["load"] = load
    elif "load_average" not in data["machine"] and hasattr(os, "getloadavg"):
        data["load"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    PUBLISHED.mkdir(exist_ok=True)
    out = PUBLISHED / f"{name}.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", nargs="?", help="one published result (default: all)")
    ap.add_argument("--readme", action="store_true", help="rewrite README's table")
    ap.add_argument("--publish", nargs=2, metavar=("RESULT_JSON", "NAME"),
                    help="copy bench/results/X.json to bench/published/NAME.json")
    ap.add_argument("--command", help="with --publish: the command that made it")
    ap.add_argument("--label", help="with --publish: the machine in words")
    ap.add_argument("--load", help="with --publish: the load average while it ran "
                                   "(default: the one the benchmark recorded, else now)")
    args = ap.parse_args(argv)
    if args.publish:
        if not args.command:
            ap.error("--publish needs --command")
        print("wrote", publish(Path(args.publish[0]), args.publish[1], args.command, args.label,
                               args.load))
        return 0
    if args.readme:
        print("README.md", "updated" if rewrite_readme() else "unchanged")
        return 0
    for name in [args.name] if args.name else names():
        print(f"## {name}\n\n{render(name)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
