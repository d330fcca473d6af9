"""What a run reports: one :class:`ClipOutcome` per clip, gathered into a :class:`RunReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClipOutcome:
    """What happened to one clip in one run."""

    index: int
    clip_id: str
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed_stage: str | None = None
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    compute_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    deferred: bool = False
    pid: int = 0

    def absorb(self, earlier: ClipOutcome) -> None:
        """Count work done on this clip in an earlier pass that ended in a deferral."""
        self.computed = earlier.computed + self.computed
        self.reused = earlier.reused + self.reused
        for stage, seconds in earlier.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        self.compute_seconds += earlier.compute_seconds
        self.frames += earlier.frames
        self.seconds += earlier.seconds


@dataclass
class RunReport:
    """Summary of a run: clips computed, already complete, and failed (with stage and error)."""

    dataset: str
    stages: list[str]
    n_clips: int
    outcomes: list[ClipOutcome] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    workers: int = 1

    @property
    def failures(self) -> list[ClipOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def computed(self) -> dict[str, int]:
        """Clips per stage computed in this run."""
        return self._clips_per_stage("computed")

    @property
    def reused(self) -> dict[str, int]:
        """Clips per stage copied from an entry of an earlier clips-table version (the clip did not change)."""
        return self._clips_per_stage("reused")

    def _clips_per_stage(self, field_name: str) -> dict[str, int]:
        """How many outcomes list each planned stage in their ``field_name`` (``computed`` or ``reused``)."""
        counts = dict.fromkeys(self.stages, 0)
        for o in self.outcomes:
            for stage in getattr(o, field_name):
                counts[stage] += 1
        return counts

    @property
    def computed_clips(self) -> list[str]:
        """Clips for which at least one stage was computed (not reused) in this run."""
        return [o.clip_id for o in self.outcomes if o.computed]

    @property
    def compute_seconds(self) -> float:
        """Time spent inside the stages' compute functions, summed over clips (the kernels' share)."""
        return sum(o.compute_seconds for o in self.outcomes)

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Compute time per stage, summed over clips."""
        totals = dict.fromkeys(self.stages, 0.0)
        for o in self.outcomes:
            for stage, seconds in o.stage_seconds.items():
                totals[stage] += seconds
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "stages": self.stages,
            "n_clips": self.n_clips,
            "skipped": self.skipped,
            "computed": self.computed,
            "reused": self.reused,
            "computed_clips": self.computed_clips,
            "seconds": round(self.seconds, 3),
            "compute_seconds": round(self.compute_seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "workers": self.workers,
            "failures": [{"clip": o.clip_id, "stage": o.failed_stage, "error": o.error} for o in self.failures],
        }
