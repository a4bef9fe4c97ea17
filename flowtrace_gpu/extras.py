"""Optional extras: import what an extra provides, or say how to install it.

The ``[dask]`` extra (dask.array, distributed, zarr) is imported only by the
calls that need it, so ``import flowtrace_gpu`` never imports dask.
"""

from __future__ import annotations

import importlib

from .errors import FlowtraceError

#: The command that installs the scale-out extra.
DASK_EXTRA = "pip install 'flowtrace-gpu[dask]'"


def require_dask(module: str, purpose: str):
    """Import ``module`` of the ``[dask]`` extra (``'dask.array'``, ``'distributed'``, ``'zarr'``).

    Raises
    ------
    FlowtraceError
        When it is not importable: says what needed it and how to install it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlowtraceError(
            f"{purpose} needs {module.split('.')[0]!r}, which is not importable ({exc}); "
            f"install the scale-out extra with: {DASK_EXTRA}"
        ) from None
