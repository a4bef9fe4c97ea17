#!/usr/bin/env bash
# Build the wheel and import flowtrace_gpu.kernels from it, outside the source tree; the
# napari plugin's manifest (package data) must be in it too.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel --quiet --no-deps -w "$work/dist" .
.venv/bin/python -m pip install --quiet --no-deps --target "$work/site" "$work"/dist/*.whl
cd "$work"
PYTHONPATH="$work/site" "$OLDPWD/.venv/bin/python" - <<'PY'
import pathlib, flowtrace_gpu, flowtrace_gpu.kernels.window as w
root = pathlib.Path(flowtrace_gpu.__file__).parent
assert pathlib.Path(w.__file__).parent == root / "kernels", w.__file__
assert "site" in str(root), root
assert (root / "napari" / "napari.yaml").is_file(), "the wheel lacks the napari plugin's manifest"
print(f"wheel ok: flowtrace_gpu.kernels at {pathlib.Path(w.__file__).parent}")
PY
