"""Provenance: which software, host and time produced an entry."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import socket
from importlib import metadata

import mer

# Distribution names whose versions change what the pipeline computes.
_DISTRIBUTIONS = {
    "numpy": "numpy",
    "opencv": "opencv-contrib-python-headless",
    "dlib": "dlib-bin",
    "numba": "numba",
    "torch": "torch",
    "zarr": "zarr",
    "scipy": "scipy",
    "scikit-image": "scikit-image",
}


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    return tuple(_read_versions().items())


def software_versions() -> dict[str, str]:
    """Versions of the project and of the libraries that shape stored values (looked up once per process)."""
    return dict(_versions())


def _read_versions() -> dict[str, str]:
    """Versions of the project and of the libraries that shape stored values (read without importing them)."""
    versions = {"mer": mer.__version__, "python": platform.python_version()}
    for label, dist in _DISTRIBUTIONS.items():
        try:
            versions[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[label] = "not installed"
    return versions


def utc_now() -> str:
    """Current UTC time as ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def provenance_record() -> dict[str, object]:
    """The provenance block written with every entry and run."""
    return {
        "versions": software_versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "created": utc_now(),
    }
