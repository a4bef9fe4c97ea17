"""The engine (internal): what a run computes and how frames flow through it.

``plan`` decides once what every window shows (:class:`~.plan.TracePlan`);
``pipeline`` runs the data path -- a reader thread prefetches frames, the
compute loop pushes them through a backend's projector (a resident ring of
the last F frames), a writer pool encodes the images; ``thread_split``
divides the cores between them; ``saturation`` wraps a projector for
``saturate=P``.
"""
