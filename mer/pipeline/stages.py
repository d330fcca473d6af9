"""Imports every built-in stage module so that they register themselves."""

from mer.pipeline import face_stages, ingest, temporal_stages  # noqa: F401
