"""Export one entry to HDF5 for tools that read HDF5 (MATLAB, h5py users)."""

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
