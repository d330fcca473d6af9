"""Imports every built-in stage module so that they register themselves."""

from mer.pipeline import ingest  # noqa: F401
