"""The first run on a machine: the compile notice, the warmup, and kernels that load wherever installed.

Each test starts fresh processes with their own Numba cache folder, so a
cold cache really is cold (these compile: marked slow).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from flowtrace_gpu.synthetic import synthetic_movie

from conftest import ROOT

REPO = ROOT
NOTICE = "compiling CPU kernels for"

pytestmark = pytest.mark.slow


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "FLOWTRACE_BACKEND")}
    env.update(extra)
    return env


def test_cli_says_it_compiles_once_on_a_cold_cache_and_not_on_a_warm_one(tmp_path):
    tifffile.imwrite(tmp_path / "movie.tif", synthetic_movie(14, (24, 24)))
    env = _env(NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for out in ("cold", "warm"):
        done = subprocess.run(
            [sys.executable, "-m", "flowtrace_gpu", str(tmp_path / "movie.tif"), "5",
             str(tmp_path / out), "--subtract-median", "--backend", "numba"],
            env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        runs.append(done.stderr)
    cold, warm = runs
    assert cold.count(NOTICE) == 1, cold
    line = next(line for line in cold.splitlines() if NOTICE in line)
    assert line.startswith("flowtrace: compiling CPU kernels for subtract_median (uint8 frames)")
    assert "first use on this machine, cached for later runs" in line
    assert NOTICE not in warm, warm
    assert len(list((tmp_path / "warm").glob("*.png"))) == 10


def test_quiet_cli_keeps_the_notice_off(tmp_path):
    tifffile.imwrite(tmp_path / "movie.tif", synthetic_movie(8, (16, 16)))
    done = subprocess.run(
        [sys.executable, "-m", "flowtrace_gpu", str(tmp_path / "movie.tif"), "4",
         str(tmp_path / "out"), "--backend", "numba", "--quiet"],
        env=_env(NUMBA_CACHE_DIR=str(tmp_path / "cache")), capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_api_logs_the_notice_as_a_record(tmp_path):
    code = (
        "import logging, numpy as np\n"
        "records = []\n"
        "class H(logging.Handler):\n"
        "    def emit(self, r): records.append((r.levelname, r.getMessage()))\n"
        "logging.getLogger('flowtrace_gpu').addHandler(H())\n"
        "logging.getLogger('flowtrace_gpu').setLevel(logging.INFO)\n"
        "from flowtrace_gpu import flowtrace_array\n"
        "m = (np.arange(8 * 6 * 5) % 7).reshape(8, 6, 5).astype(np.uint16)\n"
        "flowtrace_array(m, 4, backend='numba', progress=False)\n"
        "flowtrace_array(m, 4, backend='numba', progress=False)\n"
        "print(records)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(NUMBA_CACHE_DIR=str(tmp_path / "cache")), timeout=600)
    assert done.returncode == 0, done.stderr
    records = eval(done.stdout.strip().splitlines()[-1])
    notices = [r for r in records if NOTICE in r[1]]
    assert notices == [("INFO", "compiling CPU kernels for the plain maximum (uint16 frames): "
                                "first use on this machine, cached for later runs")]


def test_warmup_fills_the_cache_a_later_run_only_loads(tmp_path):
    cache = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "-m", "flowtrace_gpu", "warmup", "--dtypes", "uint16", "--options",
         "invert_color", "--channels", "gray", "--jobs", "2", "--quiet"],
        env=_env(NUMBA_CACHE_DIR=cache), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "flowtrace warmup: 1 paths ready" in done.stderr
    assert f"kernels cached in {cache} (NUMBA_CACHE_DIR)" in done.stderr
    # a fresh process on the warmed cache compiles nothing for that path
    code = ("from flowtrace_gpu.scaleout.warmup import run_one\n"
            "print(run_one('invert_color', 'uint16', 'gray', 10)[0])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(NUMBA_CACHE_DIR=cache), timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "0"


def test_warmup_rejects_an_unknown_option():
    from flowtrace_gpu.errors import FlowtraceError
    from flowtrace_gpu.scaleout.warmup import parse_options, tasks

    assert parse_options("subtract_median+normalize=global+saturate=0.5") == {
        "subtract_median": True, "normalize": "global", "saturate": 0.5}
    with pytest.raises(FlowtraceError, match="unknown option 'subtract_mean'"):
        parse_options("subtract_mean")
    # the median path at the adaptive median's length too; RGB and gray for each dtype
    assert {t[3] for t in tasks(["subtract_median"], ["uint8"], ["gray"])} == {10, 40}
    assert len(tasks(["", "color_series"], ["uint8", "uint16"], ["gray", "rgb"])) == 8
    # a long window adds the records color path, and only where colors are asked for
    long = tasks(["", "color_series"], ["uint8"], ["gray"], lengths=(10, 40, 200))
    assert sorted(t[3] for t in long) == [10, 10, 200]


# --- a read-only install run by a user who cannot write home ----------------------------

RUN = (
    "import numpy as np, sys, tempfile\n"
    "if len(sys.argv) > 3:\n"
    "    tempfile.tempdir = sys.argv[3]  # the temporary folder, unwritable too\n"
    "import flowtrace_gpu\n"
    "assert flowtrace_gpu.__file__.startswith(sys.argv[1]), flowtrace_gpu.__file__\n"
    "from flowtrace_gpu import flowtrace_array\n"
    "from flowtrace_gpu.backends import get_backend\n"
    "m = (np.arange(8 * 6 * 5) % 11).reshape(8, 6, 5).astype(np.uint8)\n"
    "got = flowtrace_array(m, 4, backend=sys.argv[2], progress=False)\n"
    "ref = flowtrace_array(m, 4, backend='numpy', progress=False)\n"
    "assert (got == ref).all()\n"
    "print('backend', get_backend(sys.argv[2]).name)\n"
)


@pytest.fixture
def locked_install():
    """The package copied to a folder nobody can write, a home nobody can write, and a
    temporary folder everyone can."""
    base = Path(tempfile.mkdtemp(prefix="flowtrace-ro-"))
    try:
        site = base / "site"
        shutil.copytree(REPO / "flowtrace_gpu", site / "flowtrace_gpu",
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
        home = base / "home"
        home.mkdir()
        tmp = base / "tmp"
        tmp.mkdir()
        for path in [site, *site.rglob("*"), home]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        base.chmod(0o755)
        tmp.chmod(0o777 | stat.S_ISVTX)
        yield site, home, tmp
    finally:
        for path in [base, *base.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base)


def _run_as_other(site, home, tmp, backend, tmpdir=None):
    env = _env(PYTHONPATH=str(site), HOME=str(home), TMPDIR=str(tmp))
    prefix = []
    if os.geteuid() == 0:
        # root writes anywhere: drop the capabilities that override file permissions
        # (running as another user would do too, where that user can reach Python)
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("as root, needs util-linux's setpriv to drop CAP_DAC_OVERRIDE")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    args = [str(site), backend] + ([str(tmpdir)] if tmpdir else [])
    return subprocess.run([*prefix, sys.executable, "-c", RUN, *args], env=env, cwd=str(tmp),
                          capture_output=True, text=True, timeout=600)


def test_read_only_install_and_home_cache_in_a_temporary_folder(locked_install):
    site, home, tmp = locked_install
    done = _run_as_other(site, home, tmp, "numba")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "numba"
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, done.stderr
    assert "compiled CPU kernels are cached in" in warnings[0]
    assert str(tmp) in warnings[0] and "NUMBA_CACHE_DIR" in warnings[0]
    assert "upgrade" not in done.stderr
    # 'auto' takes numba there too, and a second process finds the cached kernels
    done = _run_as_other(site, home, tmp, "auto")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "numba"


def test_nowhere_to_cache_auto_says_why_it_passes_over_numba(locked_install):
    site, home, tmp = locked_install
    done = _run_as_other(site, home, tmp, "auto", tmpdir=home)  # not even a temporary folder
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "numpy"
    said = [line for line in done.stderr.splitlines() if "numba" in line]
    assert len(said) == 1, done.stderr
    assert "backend 'auto' runs numpy: the numba backend failed" in said[0]
    assert "cannot be cached" in said[0] and "NUMBA_CACHE_DIR" in said[0]
    assert "upgrade" not in said[0]
    done = _run_as_other(site, home, tmp, "numba", tmpdir=home)
    assert done.returncode != 0
    assert "set NUMBA_CACHE_DIR to a writable folder" in done.stderr
    assert "upgrade" not in done.stderr


def test_cold_bench_child_lists_what_compiled(tmp_path):
    """bench_cold's child measures a path and lists what compiled (a compile on a cold cache)."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_cold.py"), "--child", "invert_color",
         "--dtypes", "uint8", "--frames", "8", "--side", "8", "--f", "4"],
        env=_env(NUMBA_CACHE_DIR=str(tmp_path / "cache")), capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["first_s"] > result["second_s"] > 0
    assert any(c["function"] == "sliding.ext_push" for c in result["compiled"])
    assert np.isfinite([c["exclusive_s"] for c in result["compiled"]]).all()
