#!/usr/bin/env bash
# Build the wheel, install it outside the source tree, and import every module from it;
# the napari plugin's manifest (package data) must be in it too.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel --quiet --no-deps -w "$work/dist" .
.venv/bin/python -m pip install --quiet --no-deps --target "$work/site" "$work"/dist/*.whl
cd "$work"
SOURCE="$OLDPWD/flowtrace_gpu" PYTHONPATH="$work/site" "$OLDPWD/.venv/bin/python" - <<'PY'
import importlib, os, pathlib, pkgutil, flowtrace_gpu
root = pathlib.Path(flowtrace_gpu.__file__).parent
# every module of the source tree is in the wheel
source = {p.relative_to(os.environ["SOURCE"]) for p in pathlib.Path(os.environ["SOURCE"]).rglob("*.py")}
installed = {p.relative_to(root) for p in root.rglob("*.py")}
assert source <= installed, sorted(source - installed)
assert "site" in str(root), root
assert (root / "napari" / "napari.yaml").is_file(), "the wheel lacks the napari plugin's manifest"
names = [m.name for m in pkgutil.walk_packages(flowtrace_gpu.__path__, "flowtrace_gpu.")
         if not m.name.endswith("__main__")]
for name in names:
    module = importlib.import_module(name)
    assert pathlib.Path(module.__file__).is_relative_to(root), (name, module.__file__)
print(f"wheel ok: {len(names)} modules import from {root}")
PY
