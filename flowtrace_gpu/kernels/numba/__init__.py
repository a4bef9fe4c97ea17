"""Numba CPU kernels (internal): ``project`` and ``sliding`` (maxima, minima,
stretches), ``median`` and ``median_adaptive`` (sliding medians), ``color*``
(weighted time series), ``saturate`` (histograms) and ``huffman`` (the PNG
writer's coder). Compiled on first use and cached on disk."""
