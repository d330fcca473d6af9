"""Every ``mer-cli`` command's errors as one line: user errors exit 2, unexpected ones exit 1, tracebacks on demand.

`guard_commands(app)` wraps every registered command (sub-apps included) with `guarded`. A user error (a bad
value, a missing or damaged file, a store problem, a full or read-only disk) prints ``error: …`` naming the file,
option or value and what to do, and exits 2. Anything else is a bug or an unhandled case: one line with a hint to
rerun with ``MER_DEBUG=1`` (or ``mer-cli --debug …``), exit 1. With debugging on, the traceback is printed first.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import typer

from mer.cli.console import print_error

F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "MER_DEBUG"
_state = {"debug": False}
_GUARDED = "__mer_guarded__"
_EXITS = (click.exceptions.Exit, click.exceptions.Abort, typer.Exit, typer.Abort)  # normal ends, not errors

_OS_HINTS = {
    errno.ENOSPC: "free disk space (or choose another --store / --out) and rerun: completed clips are kept",
    errno.EDQUOT: "free space within your quota and rerun: completed clips are kept",
    errno.EROFS: "the file system is read-only: choose a writable location",
    errno.EACCES: "check the permissions, or choose a location you can write to",
    errno.EPERM: "check the permissions, or choose a location you can write to",
    errno.ENAMETOOLONG: "shorten the name (a path component has at most 255 bytes)",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "a folder was given where a file is expected: check the path",
    errno.EEXIST: "something is already there: remove it or choose another path",
}


def set_debug(enabled: bool) -> None:
    """Turn tracebacks on (``--debug``) or leave them to ``MER_DEBUG``."""
    _state["debug"] = enabled


def debug_enabled() -> bool:
    """Whether tracebacks are shown: ``--debug`` was given or ``MER_DEBUG`` is set to something other than 0."""
    return _state["debug"] or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def one_line(text: str) -> str:
    """The non-blank lines of ``text`` joined with ``; `` (a message never spans lines)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _os_message(exc: OSError) -> str:
    if exc.strerror is None or exc.errno is None:
        return str(exc)  # raised with a message of our own, e.g. FileNotFoundError("no mer store at …")
    where = [repr(str(f)) for f in (exc.filename, exc.filename2) if f is not None]
    text = exc.strerror + (f": {' -> '.join(where)}" if where else "")
    hint = _OS_HINTS.get(exc.errno)
    return f"{text} ({hint})" if hint else text


def _is_usage_error(exc: BaseException) -> bool:
    """click's UsageError or BadParameter, from click itself or from the copy of click that typer ships."""
    if isinstance(exc, click.UsageError | typer.BadParameter):
        return True
    return any(c.__name__ == "UsageError" for c in type(exc).__mro__) and callable(getattr(exc, "format_message", None))


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for a user error, or None when ``exc`` is not one (a bug: show it as unexpected)."""
    from mer.store import StoreError

    if isinstance(exc, _EXITS):
        return None
    if _is_usage_error(exc):  # typer.BadParameter raised inside a command
        return one_line(exc.format_message())  # type: ignore[attr-defined]
    if isinstance(exc, json.JSONDecodeError):
        return one_line(
            f"damaged JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): a metadata file was cut short or "
            "edited; `mer-cli store verify STORE` names it"
        )
    if isinstance(exc, OSError):
        return one_line(_os_message(exc))
    if isinstance(exc, ValueError | StoreError):
        return one_line(str(exc) or type(exc).__name__)
    return None


def report_exception(exc: BaseException) -> int:
    """Print ``exc`` as one line (the traceback first when debugging) and return the exit code: 2 user, 1 other."""
    if debug_enabled():
        sys.stderr.write("".join(traceback.format_exception(exc)))
    message = user_error_message(exc)
    if message is not None:
        print_error(message)
        return 2
    print_error(
        one_line(f"unexpected {type(exc).__name__}: {exc}")
        + f" (a bug or an unhandled case; rerun with {DEBUG_ENV}=1 or mer-cli --debug for the traceback)"
    )
    return 1


def guarded(command: F) -> F:
    """Wrap a command so that any exception it raises is reported by `report_exception` (typer's exits pass)."""
    if getattr(command, _GUARDED, False):
        return command

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _EXITS:
            raise
        except Exception as exc:
            raise typer.Exit(report_exception(exc)) from None

    setattr(wrapper, _GUARDED, True)
    return wrapper  # type: ignore[return-value]


def guard_commands(app: typer.Typer) -> None:
    """Apply `guarded` to every command registered on ``app`` and on its sub-apps (idempotent)."""
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = guarded(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            guard_commands(group.typer_instance)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a bad option value or a missing store entry as one line and exit 2, not as a traceback."""
    try:
        yield
    except Exception as exc:
        message = user_error_message(exc)
        if message is None:
            raise
        print_error(message)
        raise typer.Exit(2) from None
