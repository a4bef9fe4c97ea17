"""Past one machine (internal): ``dask_trace`` (:func:`flowtrace_dask`, a lazy
dask array, blocks overlapping by F - 1 frames) and ``batch``
(:func:`flowtrace_batch`, an archive of recordings on a cluster). Both need
the ``[dask]`` extra, imported only when called."""
