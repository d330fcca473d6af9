"""What the store holds, as plain records: entry addresses, open entries, output specs, listing and verify rows."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from mer.names import validate_component
from mer.store.errors import EntryNotFoundError

CLIP_DIM = "clip"  # the clip axis of every stacked array
CLIP_COORD = "clip_id"  # the string array of an entry's clip ids along that axis (xarray's coordinate)


@dataclass(frozen=True)
class EntryRef:
    """Address of one entry: dataset, stage and key."""

    dataset: str
    stage: str
    key: str

    def __post_init__(self) -> None:
        # every store path of an entry is built from these: never from a name that is not one safe component
        # (an entry's recorded inputs, a user's argument)
        for kind, name in (("dataset", self.dataset), ("stage", self.stage), ("key", self.key)):
            validate_component(kind, name)

    @property
    def path(self) -> str:
        return f"{self.dataset}/{self.stage}/{self.key}"

    def __str__(self) -> str:
        return self.path


@dataclass
class EntryInfo:
    """What ``ls`` shows for one entry."""

    ref: EntryRef
    params: dict[str, Any]
    inputs: dict[str, str]
    n_clips: int
    n_done: int
    n_failed: int
    created: str = ""
    manifest_hash: str = ""

    @property
    def status(self) -> str:
        if self.n_done == self.n_clips:
            return "complete"
        if self.n_failed and self.n_done + self.n_failed == self.n_clips:
            return f"done with {self.n_failed} failed"
        return f"partial {self.n_done}/{self.n_clips}"

    @property
    def dataset(self) -> str:
        return self.ref.dataset

    @property
    def stage(self) -> str:
        return self.ref.stage

    @property
    def key(self) -> str:
        return self.ref.key


@dataclass
class VerifyIssue:
    """One problem found by ``verify``: where (entry or manifest, clip, file) and what."""

    entry: str
    clip: str
    chunk: str
    problem: str

    def __str__(self) -> str:
        return f"{self.entry} clip {self.clip}: {self.problem} {self.chunk}"


@dataclass
class OutputSpec:
    """How an output array is stored: per clip (any shape) or stacked with a clip axis (fixed row shape)."""

    name: str
    dtype: str
    stacked: bool = False
    row_shape: tuple[int, ...] = ()
    dims: tuple[str, ...] = ()  # names of the row axes (stored as zarr ``dimension_names`` after ``clip``)

    @property
    def dimension_names(self) -> tuple[str, ...]:
        """``clip`` then the row axes' names (``<name>_<axis>`` where the stage declared none)."""
        dims = self.dims if len(self.dims) == len(self.row_shape) else tuple(
            f"{self.name}_{i}" for i in range(len(self.row_shape))
        )
        return (CLIP_DIM, *dims)

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "stacked": self.stacked, "row_shape": list(self.row_shape)}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> OutputSpec:
        return cls(name, data["dtype"], bool(data["stacked"]), tuple(data["row_shape"]))


@dataclass
class Entry:
    """An open entry: its reference, attributes and output specs."""

    ref: EntryRef
    attrs: dict[str, Any]
    outputs: dict[str, OutputSpec] = field(default_factory=dict)

    @property
    def clip_ids(self) -> list[str]:
        return list(self.attrs["clip_ids"])

    @property
    def primary(self) -> str:
        return self.attrs["primary"]

    @property
    def manifest_hash(self) -> str:
        """The version of the clips table this entry was built from."""
        return str(self.attrs.get("manifest_hash", ""))

    @property
    def recipe(self) -> str:
        """What the entry computes, independent of the clips table version (stage, version, parameters, inputs'
        recipes): entries of two table versions with one recipe hold the same values for unchanged clips."""
        return str(self.attrs.get("recipe", ""))

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {clip: i for i, clip in enumerate(self.attrs["clip_ids"])}

    def has_clip(self, clip_id: str) -> bool:
        return clip_id in self._index

    def index_of(self, clip_id: str) -> int:
        try:
            return self._index[clip_id]
        except KeyError:
            raise EntryNotFoundError(f"clip {clip_id!r} is not in entry {self.ref}") from None
