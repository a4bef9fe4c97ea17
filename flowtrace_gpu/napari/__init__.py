"""The napari plugin ``flowtrace-gpu`` (internal: napari loads it; the ``[napari]`` extra).

napari finds it through the ``napari.manifest`` entry point, which names
``napari.yaml`` beside this file. It contributes a reader for every recording
flowtrace_gpu reads (:mod:`~flowtrace_gpu.napari._reader`: lazy layers with
the recording's fps, bit depth and Bayer pattern in ``layer.metadata``) and
the ``Pathlines`` widget (:mod:`~flowtrace_gpu.napari._widget`: a live
pathline preview of the window ending at the current frame, and
``Trace all...``). Nothing here is imported until napari asks for it, so the
package imports without napari.
"""
