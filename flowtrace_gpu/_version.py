"""The package's version: declared here once (pyproject.toml reads it)."""

__version__ = "0.1.0"
