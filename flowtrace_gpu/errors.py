"""The one exception users see."""


class FlowtraceError(ValueError):
    """Bad input or an unusable setup, explained.

    Every message names the file or parameter at fault, what was expected,
    what was received and how to fix it. It is raised before any output is
    written, so nothing a user already has is lost or left half-written.
    """
