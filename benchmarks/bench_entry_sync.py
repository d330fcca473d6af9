"""What syncing an entry's shared documents costs a run: ``ensure_entry`` makes the stacked arrays' metadata, the
clip-id coordinate, the group documents and their folders durable once a run (``Backend.sync``), never per clip.

Printed: milliseconds to create an entry (three outputs, two stacked, 50 clips), to sync its documents when they are
already on the disk (every later run), and what ``ensure_entry`` costs on an existing entry, against the commit of one
small clip for scale.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_entry_sync.py [--repeats 20]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from mer.store import open_store
from mer.store.entries import EntryRef, OutputSpec

OUTPUTS = [
    OutputSpec("image", "float32", stacked=True, row_shape=(3, 8, 8)),
    OutputSpec("apex", "int32", stacked=True, row_shape=(2,)),
    OutputSpec("frames", "uint8"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        st = open_store(f"{tmp}/store", "a")
        ref = EntryRef("ds", "stage", "key")
        attrs = {"clip_ids": [f"s{i:02d}/c01" for i in range(50)], "primary": "image", "recipe": "r"}
        start = time.perf_counter()
        entry = st.ensure_entry(ref, OUTPUTS, attrs)
        created = time.perf_counter() - start
        documents = st._entry_documents(ref, [o for o in OUTPUTS if o.stacked])
        start = time.perf_counter()
        for _ in range(args.repeats):
            st.backend.sync(documents)
        synced = (time.perf_counter() - start) / args.repeats
        start = time.perf_counter()
        for _ in range(args.repeats):
            st.ensure_entry(ref, OUTPUTS, attrs)
        existing = (time.perf_counter() - start) / args.repeats
        arrays = {"image": np.ones((3, 8, 8), np.float32), "apex": np.arange(2, dtype=np.int32),
                  "frames": np.zeros((8, 32, 32, 3), np.uint8)}
        start = time.perf_counter()
        for i in range(args.repeats):
            st.commit_clip(entry, i, arrays)
        commit = (time.perf_counter() - start) / args.repeats
    print(f"create an entry: {created * 1000:.1f} ms")
    print(f"sync its {len(documents)} shared documents and their folders, already durable: {synced * 1000:.2f} ms")
    print(f"ensure_entry on an existing entry (once a run and stage): {existing * 1000:.2f} ms")
    print(f"one small clip's commit, for scale: {commit * 1000:.2f} ms (ratio {existing / commit:.2f})")


if __name__ == "__main__":
    main()
