"""Zarr v3 array files written directly: metadata documents and encoded chunks, byte for byte what zarr writes.

Creating an array through zarr's API costs about 10 ms (parsing, checks of every parent level, deleting the old
prefix, an event-loop round trip per call), and on object storage a dozen requests — per per-clip array, about ten a
clip. Here an array's ``zarr.json`` is rendered from a template that zarr itself wrote once per (dtype, rank,
compressors) in memory, and its chunks are encoded with the codecs of its own metadata, synchronously; the caller
writes the bytes. A template is used only when re-rendering it reproduces zarr's bytes exactly, and arrays this
path does not cover (empty, or of dtypes other than numbers and booleans) are left to zarr (``None``).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.abc.codec import SupportsSyncCodec
from zarr.core.array_spec import ArrayConfig, ArraySpec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata

ZARR_JSON = "zarr.json"


@functools.cache
def implicit_group_document() -> bytes:
    """The ``zarr.json`` zarr writes for a parent group it creates on the way to an array."""
    return GroupMetadata(zarr_format=3).to_buffer_dict(default_buffer_prototype())[ZARR_JSON].to_bytes()


def _render(doc: dict[str, Any]) -> bytes:
    """A metadata dict as zarr serialises it (``ArrayV3Metadata.to_buffer_dict``)."""
    return json.dumps(doc, allow_nan=True, indent=zarr.config.get("json_indent")).encode()


@dataclass(frozen=True)
class ChunkEncoder:
    """The codecs of one array's metadata, applied synchronously to whole chunks."""

    codecs: tuple[Any, ...]
    spec: ArraySpec

    @classmethod
    def from_document(cls, document: bytes, config: dict[str, Any]) -> ChunkEncoder | None:
        """The encoder of an array's ``zarr.json``; None when a codec has no synchronous path (zarr writes then)."""
        metadata = ArrayV3Metadata.from_dict(json.loads(document))
        if not all(isinstance(c, SupportsSyncCodec) for c in metadata.codecs):
            return None
        spec = metadata.get_chunk_spec(
            (0,) * metadata.ndim, ArrayConfig.from_dict(config), default_buffer_prototype()  # type: ignore[arg-type]
        )
        return cls(tuple(metadata.codecs), spec)

    def encode(self, chunk: np.ndarray) -> bytes:
        """One chunk (already of the full chunk shape) as stored."""
        data: Any = self.spec.prototype.nd_buffer.from_numpy_array(np.ascontiguousarray(chunk))
        for codec in self.codecs:
            data = codec._encode_sync(data, self.spec)
        return data.to_bytes()


@dataclass(frozen=True)
class ArrayTemplate:
    """What zarr writes for arrays of one dtype, rank and compressor set, up to shape and chunk shape."""

    doc: dict[str, Any]
    encoder: ChunkEncoder

    def document(self, shape: tuple[int, ...], chunks: tuple[int, ...]) -> bytes:
        grid = self.doc["chunk_grid"]
        return _render(
            {
                **self.doc,
                "shape": list(shape),
                "chunk_grid": {**grid, "configuration": {**grid["configuration"], "chunk_shape": list(chunks)}},
            }
        )


_TEMPLATES: dict[tuple[str, int, str, str], ArrayTemplate | None] = {}


def _build_template(dtype: np.dtype, ndim: int, compressors: Any, config: dict[str, Any]) -> ArrayTemplate | None:
    written_files: dict[str, Any] = {}
    scratch = zarr.storage.MemoryStore(store_dict=written_files)
    shape = (1,) * ndim
    zarr.create_array(
        store=scratch, name="a", shape=shape, chunks=shape, dtype=dtype, fill_value=0, config=config,
        compressors=compressors,
    )
    written = written_files[f"a/{ZARR_JSON}"].to_bytes()
    doc = json.loads(written)
    encoder = ChunkEncoder.from_document(written, config)
    template = ArrayTemplate(doc, encoder) if encoder is not None else None
    if template is None or template.document(shape, shape) != written:
        return None  # zarr would write something this rendering does not reproduce: let zarr write
    return template


def template_for(dtype: np.dtype, ndim: int, compressors: Any, config: dict[str, Any]) -> ArrayTemplate | None:
    """The template for arrays of ``dtype`` and rank ``ndim`` (numbers and booleans only), or None."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf" or ndim < 1:
        return None
    described = compressors if compressors is None or isinstance(compressors, str) else [
        c.to_dict() for c in compressors
    ]
    key = (dtype.str, ndim, json.dumps(described, sort_keys=True), json.dumps(config, sort_keys=True))
    if key not in _TEMPLATES:
        _TEMPLATES[key] = _build_template(dtype, ndim, compressors, config)
    return _TEMPLATES[key]


def regular_chunks(array: np.ndarray, chunks: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
    """Every chunk of ``array`` as (key below the array, values padded with zeros to the chunk shape), as zarr v3
    stores a regular grid with the default key encoding (``c/i/j/...``)."""
    grids = [range(math.ceil(s / c)) for s, c in zip(array.shape, chunks, strict=True)]
    out = []
    for idx in itertools.product(*grids):
        block = array[tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks, strict=True))]
        if block.shape != chunks:
            padded = np.zeros(chunks, dtype=array.dtype)
            padded[tuple(slice(0, s) for s in block.shape)] = block
            block = padded
        out.append(("c/" + "/".join(str(i) for i in idx), block))
    return out
