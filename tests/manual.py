"""The manual as the tests read it: README.md and the pages of docs/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def pages() -> list[Path]:
    """README.md, then every page of docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def page(name: str) -> str:
    """One page of docs/, by file name."""
    return (DOCS / name).read_text()


def text() -> str:
    """Every page, one after the other."""
    return "\n".join(p.read_text() for p in pages())
