"""Array kernels of flowtrace_gpu, installed as ``flowtrace_gpu.kernels``.

``window`` and ``stretch`` are array-namespace generic: they take the array
module ``xp`` (NumPy, or CuPy on a GPU) and are the readable reference that
the NumPy and CuPy backends run. The ``numba_*`` modules hold the CPU
kernels whose cost per output frame does not grow with the window, and
``numba_huffman`` the PNG writer's Huffman coder.
"""
