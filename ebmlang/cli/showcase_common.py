"""What every showcase section shares: where the examples are, the figure width, the
result a section returns, and which backend a gradient-based section runs on."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Every figure has this width (inches; 880 px at the 110 dpi PNGs are saved with), so
# they line up side by side in a report; line plots also share one height.
FIGURE_WIDTH = 8.0


@dataclass
class SectionResult:
    """What one section did: status "ok" or "failed", time, headline numbers, files."""

    name: str
    status: str = "ok"
    seconds: float = 0.0
    numbers: dict = field(default_factory=dict)
    headline: str = ""
    files: list = field(default_factory=list)
    why: str = ""


def gradient_backend(backend: str) -> str:
    """Langevin and learning need gradients, which the numpy backend does not have."""
    return "torch" if backend in ("auto", "numpy") else backend
