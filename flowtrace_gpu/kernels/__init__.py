"""Array kernels: the bottom layer (internal; may change between releases).

``window``, ``stretch`` and ``saturate`` are array-namespace generic: they
take the array module ``xp`` (NumPy, or CuPy on a GPU) and are the readable
reference that the NumPy and CuPy backends run. ``colors`` holds the
original's color ramp, colormaps, the fade and :class:`~.colors.WeightMode`.
``numba/`` holds the CPU kernels whose cost per output frame does not grow
with the window, and the PNG writer's Huffman coder. Kernels import nothing
from the layers above them.
"""
