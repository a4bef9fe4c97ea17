"""The NumPy backend: the readable reference, available everywhere."""

from __future__ import annotations

import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    """Brute-force windows in NumPy: O(F) work per output frame."""

    name = "numpy"
    xp = np


def load() -> NumpyBackend:
    return NumpyBackend()
