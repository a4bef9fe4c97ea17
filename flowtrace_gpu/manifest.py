"""What an output holds: :func:`read_manifest` (public; the record itself is
kept by the run, in :mod:`flowtrace_gpu.runs.manifest`)."""

from .runs.manifest import Manifest, read_manifest

__all__ = ["Manifest", "read_manifest"]
