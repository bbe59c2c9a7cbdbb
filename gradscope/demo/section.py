"""What one demo section holds: its numbers (for results.json), short summary lines (for
the terminal), images and figures (for PNGs and the report), and tables."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Visual", "Table", "Section"]


@dataclass
class Visual:
    """One picture: `image` is a uint8 (H, W, 3) array or a matplotlib Figure; `name` is
    its file stem; `pixelated` asks the report to upscale it without smoothing (tiny
    model-input images). `path` is set (relative to the output folder) once saved."""
    name: str
    image: object
    caption: str = ""
    pixelated: bool = False
    path: str = ""


@dataclass
class Table:
    """A table of text cells; `images` (optional, one Visual name per row) puts a
    thumbnail in front of each row."""
    headers: list
    rows: list
    images: list | None = None


@dataclass
class Section:
    """One part of the demo. `error` says why it could not run (then numbers may be empty)."""
    key: str
    title: str
    description: str = ""
    summary: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    visuals: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-able record for results.json (images as relative PNG paths)."""
        return {"title": self.title, "error": self.error or None, "seconds": round(self.seconds, 3),
                "summary": list(self.summary), "numbers": self.numbers,
                "images": [v.path for v in self.visuals if v.path]}
