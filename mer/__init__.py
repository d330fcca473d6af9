"""mer: a toolkit for facial micro-expression recognition research."""

__version__ = "0.1.0"
