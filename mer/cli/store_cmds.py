"""``mer-cli store …``: list, inspect, verify and export the entries of a feature store."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mer.cli.console import console, err_console
from mer.cli.errors import user_errors
from mer.cli.store_open import open_cli_store
from mer.config import canonical_json
from mer.names import validate_component
from mer.store import StoreError, open_store
from mer.store.export import export_entry_h5, export_entry_zarr_zip
from mer.store.store import EntryRef, FeatureStore

store_app = typer.Typer(help="Inspect, verify and export a feature store.", no_args_is_help=True)


def parse_entry(store: FeatureStore, text: str) -> EntryRef:
    """Resolve ``dataset/stage[/key-prefix]`` (or a unique key prefix alone) to one entry."""
    parts = text.strip("/").split("/")
    if len(parts) == 1:
        matches = [i.ref for i in store.ls() if i.key.startswith(parts[0])]
    elif len(parts) in (2, 3):
        key = parts[2] if len(parts) == 3 else None
        matches = [i.ref for i in store.ls(parts[0], parts[1]) if key is None or i.key.startswith(key)]
    else:
        raise typer.BadParameter(f"entry {text!r}: expected dataset/stage/key, dataset/stage or a key prefix")
    if len(matches) != 1:
        listing = ", ".join(str(m) for m in matches) or "none"
        raise typer.BadParameter(f"entry {text!r} matches {len(matches)} entries ({listing}); be more specific")
    return matches[0]


@store_app.command("ls")
def ls_command(
    store: str = typer.Argument(..., help="store path or URL"),
    dataset: str | None = typer.Option(None, help="only this dataset"),
) -> None:
    """List entries: dataset, stage, key, parameters and status."""
    if dataset is not None:
        validate_component("dataset", dataset)
    st = open_cli_store(store, "r")
    table = Table(title=escape(st.location))
    for col in ("dataset", "stage", "key", "status", "parameters"):
        table.add_column(col, overflow="fold")
    for ds in [dataset] if dataset else st.datasets():
        current = st.current_manifest_hash(ds)
        n = len(st.manifest_meta(ds)["rows"])
        versions = len(st.manifest_versions(ds))
        table.add_row(Text(ds), "manifest", current[:16], f"{n} clips", f"{versions} version(s)")
        for info in st.ls(ds):
            status = info.status if info.manifest_hash == current else f"{info.status} (table {info.manifest_hash[:8]})"
            table.add_row(Text(info.dataset), Text(info.stage), info.key, status, Text(canonical_json(info.params)))
    console.print(table)


@store_app.command("info")
def info_command(
    store: str,
    entry: str = typer.Argument(..., help="dataset/stage[/key] or key prefix"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show an entry's parameters, inputs, outputs, provenance and failures."""
    st = open_cli_store(store, "r")
    ref = parse_entry(st, entry)
    info = st.info_of(ref)
    attrs = dict(st.entry(ref).attrs)
    attrs.pop("clip_ids", None)
    record = {
        "entry": str(ref),
        "status": info.status,
        "clips": info.n_clips,
        "done": info.n_done,
        "failed": [{k: r[k] for k in ("clip", "stage", "error")} for r in st.failed_records(ref)],
        **attrs,
    }
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    for key, value in record.items():
        text = value if isinstance(value, str | int) else json.dumps(value, indent=1)
        console.print(f"[bold]{escape(key)}[/bold]: {escape(str(text))}")


@store_app.command("verify")
def verify_command(
    store: str,
    repair: bool = typer.Option(
        False, "--repair", help="restore damaged metadata from its intact copy and withdraw what cannot be restored, "
        "so that the same preprocess/build command recomputes exactly that",
    ),
) -> None:
    """Check every committed chunk, array and group metadata, clips table and commit marker; exit 1 on problems."""
    with user_errors():
        st = open_store(store, "a" if repair else "r", damaged_ok=True)  # a damaged root is what verify reports
        report = st.verify_report()
    for line in report.partial:
        err_console.print(f"partial: {line}", markup=False, soft_wrap=True)
    for line in report.claims:
        err_console.print(f"claim: {line}", markup=False, soft_wrap=True)
    if report.ok:
        console.print(
            f"ok: {report.entries} entries, {report.clips} committed clips, their metadata and the clips tables "
            "match their checksums",
            markup=False,
        soft_wrap=True,
        )
        if repair:
            for line in st.repair(report):
                console.print(line, markup=False, soft_wrap=True)
        return
    for issue in report.issues:
        line = f"{issue.problem}: {issue.entry} clip {issue.clip}: {issue.chunk}"
        err_console.print(line, markup=False, soft_wrap=True)
    err_console.print(f"{len(report.issues)} problem(s) in {st.location}", markup=False, soft_wrap=True)
    if not repair:
        hint = "run `mer-cli store verify --repair`, then the same preprocess/build command"
        err_console.print(hint, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    for line in st.repair(report):
        console.print(line, markup=False, soft_wrap=True)
    console.print("repaired: run the same preprocess/build command again to recompute what was withdrawn",
                  markup=False, soft_wrap=True)


@store_app.command("export")
def export_command(
    store: str, entry: str, to: Path = typer.Option(..., "--to", help="target file: .h5 (HDF5) or .zarr.zip (zarr)")
) -> None:
    """Write one entry's arrays and attributes to one HDF5 (.h5) or zipped zarr (.zarr.zip) file."""
    if not to.name.endswith((".zarr.zip", ".h5", ".hdf5")):  # anything else was written as HDF5 under that name
        raise typer.BadParameter(f"--to {str(to)!r}: give a .h5 (HDF5) or .zarr.zip (zipped zarr) file name")
    st = open_cli_store(store, "r")
    ref = parse_entry(st, entry)
    write = export_entry_zarr_zip if to.name.endswith(".zarr.zip") else export_entry_h5
    try:
        n = write(st, st.entry(ref), to)
    except StoreError as exc:
        err_console.print(f"[red]error[/red]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(escape(f"wrote {n} clips of {ref} to {to}"))
