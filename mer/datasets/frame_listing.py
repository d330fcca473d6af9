"""The frames found for one clip source (an image folder or a video file), keyed by frame number."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FrameListing:
    """Image files of one folder keyed by frame number; callers report `duplicates` and `unnumbered`."""

    folder: str
    exists: bool
    frames: dict[int, str] = field(default_factory=dict)
    duplicates: dict[int, list[str]] = field(default_factory=dict)
    unnumbered: list[str] = field(default_factory=list)

    @property
    def numbers(self) -> list[int]:
        """All frame numbers found, ascending."""
        return sorted(self.frames)

    def span(self, first: int, last: int) -> tuple[list[int], list[str], list[int]]:
        """(numbers, absolute paths, missing numbers) for frames first..last inclusive, in numeric order."""
        numbers, paths, missing = [], [], []
        for n in range(first, last + 1):
            path = self.frames.get(n)
            if path is None:
                missing.append(n)
            else:
                numbers.append(n)
                paths.append(path)
        return numbers, paths, missing
