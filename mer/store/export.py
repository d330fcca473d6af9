"""Export one entry to a single file: HDF5 for tools that read HDF5 (MATLAB, h5py users), or a zipped zarr
(``.zarr.zip``) that xarray and zarr open as they open the store — for a paper's supplementary material."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mer.config import canonical_json
from mer.store.store import Entry, FeatureStore


def export_entry_h5(store: FeatureStore, entry: Entry, target: Path) -> int:
    """Write the entry's committed arrays and attributes to ``target``; return the number of clips written.

    Dataset arrays keep their clip axis (rows of clips not yet written are dropped) with a ``clip_ids`` list;
    per-clip arrays go to ``clips/<subject>/<clip>/<name>``. Attributes are stored as one JSON string.
    """
    mask = store.done_mask(entry)
    clip_ids = [c for c, ok in zip(entry.clip_ids, mask, strict=True) if ok]
    tmp = target.with_name(target.name + ".partial")
    with h5py.File(tmp, "w") as h5:
        h5.attrs["mer"] = canonical_json(entry.attrs)
        h5.create_dataset("clip_ids", data=np.array(clip_ids, dtype=h5py.string_dtype()))
        for name, spec in entry.outputs.items():
            if spec.stacked:
                data = store.read_entry(entry, name=name, allow_partial=True)[mask]
                h5.create_dataset(name, data=data, compression="gzip", compression_opts=4)
            else:
                for clip in clip_ids:
                    data = store.read_entry(entry, clip=clip, name=name)
                    h5.create_dataset(f"clips/{clip}/{name}", data=data, compression="gzip", compression_opts=4)
    tmp.replace(target)
    return len(clip_ids)


def export_entry_zarr_zip(store: FeatureStore, entry: Entry, target: Path) -> int:
    """Write the entry's committed clips to one zipped zarr v3 file; return the number of clips written.

    Dataset arrays keep their clip axis (committed clips only) and dimension names, with the ``clip_id``
    coordinate; per-clip arrays go to ``clips/<subject>/<clip>/<name>``; the entry's attributes are the root
    group's ``mer`` attribute. ``xarray.open_zarr(zarr.storage.ZipStore(target, mode="r"))`` opens it.
    """
    import zarr
    from zarr.storage import ZipStore

    from mer.store.entries import CLIP_COORD, CLIP_DIM

    mask = store.done_mask(entry)
    clip_ids = [c for c, ok in zip(entry.clip_ids, mask, strict=True) if ok]
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    zip_store = ZipStore(tmp, mode="w")
    try:
        root = zarr.create_group(store=zip_store, attributes={"mer": {**entry.attrs, "clip_ids": clip_ids}})
        coord = root.create_array(CLIP_COORD, shape=(len(clip_ids),), dtype=str, dimension_names=(CLIP_DIM,))
        coord[...] = np.array(clip_ids, dtype=object)
        for name, spec in entry.outputs.items():
            if spec.stacked:
                data = store.read_entry(entry, name=name, allow_partial=True)[mask]
                source = zarr.open_array(store=store._zstore, path=f"{entry.ref.path}/{name}", mode="r")
                dims = source.metadata.dimension_names or spec.dimension_names
                arr = root.create_array(name, shape=data.shape, dtype=data.dtype, chunks=(1, *data.shape[1:]),
                                        dimension_names=dims, attributes={"coordinates": CLIP_COORD})
                arr[...] = data
            else:
                for clip in clip_ids:
                    data = store.read_entry(entry, clip=clip, name=name)
                    arr = root.create_array(f"clips/{clip}/{name}", shape=data.shape, dtype=data.dtype)
                    arr[...] = data
    finally:
        zip_store.close()
    tmp.replace(target)
    return len(clip_ids)
