"""Run bookkeeping (internal): an output folder or file as a run owns it.

``output_run`` prepares, resumes and finishes an output; ``manifest`` is its
record (``flowtrace.json``); ``lock`` keeps two runs off one output;
``signals`` turns Ctrl-C and SIGTERM into a clean stop.
"""
