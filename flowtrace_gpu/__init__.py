"""flowtrace_gpu: pathline images from movies of particles in a flow, fast.

>>> from flowtrace_gpu import flowtrace
>>> flowtrace('sample_data', 30, 'sample_output/')        # doctest: +SKIP

The public API is what :data:`__all__` names: :func:`flowtrace` (folders,
recordings and videos), :func:`flowtrace_array` (arrays in memory),
:func:`flowtrace_dask` (a lazy dask array) and :func:`flowtrace_batch` (an
archive on a dask cluster; both need the ``[dask]`` extra, imported only
when called), :class:`FlowtraceError` (and its mid-run kind
:class:`IncompleteRunError`), :class:`RunInterrupted`, the backend helpers,
:func:`recording_info` (what a recording holds) and :func:`time_legend` (the
colors of a window's frames, as an image);
plus two modules of
declarations, :mod:`flowtrace_gpu.options` (every user option) and
:mod:`flowtrace_gpu.config` (every tunable and its environment variable); and
:func:`read_manifest` (what an output holds; also importable from
:mod:`flowtrace_gpu.manifest`). Every other module and subpackage
(``engine``, ``runs``, ``scaleout``, ``backends``, ``io``, ``kernels``) is
internal and may change between releases.
"""

from ._version import __version__
from .api import flowtrace, flowtrace_array
from .backends import available_backends, get_backend
from .errors import FlowtraceError, IncompleteRunError, RunInterrupted
from .io.info import recording_info
from .runs.legend import time_legend
from .runs.manifest import read_manifest
from .scaleout.batch import flowtrace_batch
from .scaleout.dask_trace import flowtrace_dask

__all__ = [
    "FlowtraceError",
    "IncompleteRunError",
    "RunInterrupted",
    "available_backends",
    "flowtrace",
    "flowtrace_array",
    "flowtrace_batch",
    "flowtrace_dask",
    "get_backend",
    "read_manifest",
    "recording_info",
    "time_legend",
    "__version__",
]
