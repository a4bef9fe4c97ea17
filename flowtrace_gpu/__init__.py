"""flowtrace_gpu: pathline images from movies of particles in a flow, fast.

>>> from flowtrace_gpu import flowtrace
>>> flowtrace('sample_data', 30, 'sample_output/')        # doctest: +SKIP

See :func:`flowtrace` (folders of images) and :func:`flowtrace_array`
(arrays in memory).
"""

from .api import flowtrace, flowtrace_array
from .backends import available_backends, get_backend
from .errors import FlowtraceError

__version__ = "0.1.0"

__all__ = [
    "FlowtraceError",
    "available_backends",
    "flowtrace",
    "flowtrace_array",
    "get_backend",
    "__version__",
]
