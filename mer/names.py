"""Names that become parts of store paths (dataset, subject, clip, stage, key), safe by construction.

Every name from a sheet, a folder listing or the command line is checked here before any path is built from it.
A *component* is one path segment:

* not empty, at most ``MAX_COMPONENT_BYTES`` (128) bytes in UTF-8: below every file system's limit (255 bytes on
  ext4, XFS, APFS, NTFS) with room for the suffixes the store appends, and well inside object stores' key limits
  (1024 bytes for S3 and GCS) for a whole ``dataset/stage/key/clips/subject/clip/array/c/0/0`` key;
* no path separator (``/``, ``\\``), no ``..``, no NUL or other control character (C0, DEL, C1);
* no leading dot (hidden files, the store's temporary files), no leading or trailing white space;
* not a name the store reserves for itself: anything starting with ``_`` (``_done``, ``_claims``, ``_runs``…),
  ``manifest`` and ``clips``.

A clip id is ``subject/clip``: exactly two valid components joined by one slash. This module imports nothing from
``mer`` so that every layer can use it.
"""

from __future__ import annotations

MAX_COMPONENT_BYTES = 128
RESERVED_NAMES = frozenset({"manifest", "clips"})
RESERVED_PREFIX = "_"


class UnsafeNameError(ValueError):
    """A name that cannot be used as a store path component; the message names the kind, value and reason."""

    def __init__(self, kind: str, value: object, reason: str) -> None:
        self.kind = kind
        self.value = value
        self.reason = reason
        super().__init__(f"{kind} name {shown(value)} is unusable: {reason}")


def shown(value: object, limit: int = 60) -> str:
    """``repr`` of a value with control characters escaped, cut to ``limit`` characters (for one-line messages)."""
    text = repr(value) if isinstance(value, str) else repr(str(value))
    if len(text) > limit:
        text = f"{text[: limit - 5]}…{text[-3:]} ({len(str(value))} characters)"
    return text


def printable(text: str, limit: int = 40) -> str:
    """``text`` with control characters written as ``\\xNN`` (other characters kept), cut to ``limit``."""
    out = "".join(f"\\x{ord(ch):02x}" if ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in text)
    return out if len(out) <= limit else f"{out[: limit - 4]}…{out[-3:]}"


def component_problem(value: object) -> str | None:
    """Why ``value`` cannot be one path component, or None when it is safe."""
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if value == "":
        return "empty"
    if "/" in value or "\\" in value:
        return "contains a path separator ('/' or '\\')"
    if ".." in value:
        return "contains '..'"
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value):
        return "contains a NUL or control character"
    if value.startswith("."):
        return "starts with a dot"
    if value != value.strip():
        return "starts or ends with white space"
    if value.startswith(RESERVED_PREFIX) or value.lower() in RESERVED_NAMES:
        return f"reserved by the store (names starting with '_', {', '.join(sorted(RESERVED_NAMES))})"
    size = len(value.encode("utf-8"))
    if size > MAX_COMPONENT_BYTES:
        return f"{size} bytes long in UTF-8, more than the {MAX_COMPONENT_BYTES} allowed"
    return None


def is_safe_component(value: object) -> bool:
    """Whether ``value`` is a safe path component (see the module docstring)."""
    return component_problem(value) is None


def validate_component(kind: str, value: object) -> str:
    """Return ``value`` when it is a safe path component, else raise `UnsafeNameError` naming ``kind`` and the value.

    ``kind`` says what the name is ("dataset", "subject", "clip", "stage", …) for the message.
    """
    reason = component_problem(value)
    if reason is not None:
        raise UnsafeNameError(kind, value, reason)
    return value  # type: ignore[return-value]


def validate_clip_id(value: object) -> str:
    """Return a ``subject/clip`` id whose two parts are safe components, else raise `UnsafeNameError`."""
    if not isinstance(value, str) or value.count("/") != 1:
        raise UnsafeNameError("clip id", value, "expected subject/clip (two names joined by one '/')")
    subject, clip = value.split("/")
    validate_component("subject", subject)
    validate_component("clip", clip)
    return value
