"""The Numba CPU backend (internal): ``backend`` (load, the backend class),
``projectors`` (one class per projection path), and the per-pixel states of
the sliding median (``median_state``, ``adaptive_median``) and the color
series (``color_state``)."""
