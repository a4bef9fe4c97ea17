"""The CuPy GPU backend (internal), split by job as ``cupyx.scipy.ndimage``
is: ``device`` finds CuPy and a device (never at import time), ``memory``
plans and checks device memory, ``kernels`` holds the CUDA sources and
their memoized builders, ``backend`` the backend and its projectors."""
