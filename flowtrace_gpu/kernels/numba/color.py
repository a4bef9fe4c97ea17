"""Weighted projections (``color_series``, ``fade_tails``): the kernels of the Numba backend.

The projection of a window is ``max_j fl(x_j * w[j])`` per pixel and weight
column (NumPy: the float64 stack times the weights, then ``max``), ``j`` the
frame's position in the window, stretched to 8 bits. Three paths compute it
in float32 and decide each output byte from it only where a bound on the
float32 error allows, recomputing the rest in float64: the bytes NumPy
gives. The states that drive them, and the choice among them, are in
:mod:`flowtrace_gpu.backends.numba.color_state`.

* :mod:`.numba_color_records`: per pixel only the frames that can still be
  the maximum (weights that rise or fall along the window): flat in F.
* :mod:`.numba_color_brute`: every frame of the window, any weights: O(F).
* :mod:`.numba_color_shifted`: brute force after a median or first-frame
  shift, differences, ``invert_color`` or ``add_first_frame``, with the
  image's peak taken from the image.
* :mod:`.numba_color_stretch`: the certified 8-bit stretch they share, and
  the exact peak from the frames' maxima.
"""

from .color_brute import color_brute, color_brute_each, pad_weights
from .color_records import color_step
from .color_shifted import count_tiny, shifted_brute, shifted_peak, shifted_stretch
from .color_stretch import frame_max3

__all__ = ["color_brute", "color_brute_each", "color_step", "count_tiny", "frame_max3",
           "pad_weights", "shifted_brute", "shifted_peak", "shifted_stretch"]
