"""kernels/numba: the Numba kernels; a writable cache folder is found first (:mod:`.cache_place`)."""

from .cache_place import place_cache

place_cache()
