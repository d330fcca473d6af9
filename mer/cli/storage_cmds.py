"""The global ``--storage-option key=value`` of ``mer-cli``: options for an ``s3://`` (or other fsspec URL) store."""

from __future__ import annotations

import json
import os

import typer

from mer.store.backend import STORAGE_OPTIONS_ENV, parse_storage_options


def storage_options_callback(
    storage_option: list[str] = typer.Option(
        [],
        "--storage-option",
        help="key=value for the filesystem of a URL store, e.g. endpoint_url=http://minio:9000 or anon=true "
        "(repeatable; credentials come from the AWS_* variables or ~/.aws otherwise)",
    ),
    context: typer.Context | None = None,
) -> None:
    """mer: micro-expression recognition toolkit. The options hold for the command of ``context`` (all of this
    process's life without one)."""
    if not storage_option:
        return
    try:
        options = parse_storage_options(storage_option)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--storage-option") from None
    previous = os.environ.get(STORAGE_OPTIONS_ENV)
    os.environ[STORAGE_OPTIONS_ENV] = json.dumps(options)  # worker processes inherit it
    if context is not None:  # for this command only: a later command in this process (a notebook, a test) has its own
        context.call_on_close(lambda: _restore_storage_options(previous))


def _restore_storage_options(previous: str | None) -> None:
    if previous is None:
        os.environ.pop(STORAGE_OPTIONS_ENV, None)
    else:
        os.environ[STORAGE_OPTIONS_ENV] = previous
