"""What every report page shares: escaping, the page's frame and its style."""

from __future__ import annotations

from html import escape

STYLE = """
:root { --ok: #1a7f37; --bad: #cf222e; --unsure: #9a6700; --ink: #1f2328; --mute: #656d76;
  --line: #d0d7de; --mark: #fff3b0; --active: #ffd33d; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
  margin: 0 auto; max-width: 72rem; padding: 1rem 1.5rem 4rem; }
h1 { font-size: 1.4rem; margin: .5rem 0; } h2 { font-size: 1.1rem; } h3 { font-size: .95rem;
  margin: .6rem 0 .2rem; color: var(--mute); }
.meta { color: var(--mute); font-size: .85rem; }
summary.passage-title { color: var(--mute); font-weight: 600; font-size: .95rem;
  margin: .6rem 0 .2rem; cursor: pointer; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
td, th { border: 1px solid var(--line); padding: .2rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.counts span { display: inline-block; margin-right: 1rem; }
.v-supported { color: var(--ok); } .v-contradicted { color: var(--bad); }
.v-not_supported { color: var(--unsure); }
section.row { border-top: 1px solid var(--line); padding: .4rem 0; }
section.row > details > summary { cursor: pointer; }
.text { margin: .5rem 0; white-space: pre-wrap; }
.claim { cursor: pointer; border-radius: 3px; padding: 0 1px; border-bottom: 2px solid; }
.claim.v-supported { background: #dafbe1; } .claim.v-contradicted { background: #ffebe9; }
.claim.v-not_supported { background: #fff8c5; }
.claim.active { outline: 2px solid var(--ink); }
.passage { white-space: pre-wrap; border-left: 3px solid var(--line); padding-left: .6rem;
  margin: .3rem 0; }
.ev { background: var(--mark); } .ev.active { background: var(--active);
  outline: 1px solid var(--unsure); }
.detail { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px;
  padding: .4rem .7rem; margin: .5rem 0; font-size: .9rem; }
nav.pages button { margin: 0 .2rem .2rem 0; } nav.pages button[aria-current] { font-weight: bold; }
.chart { margin: .5rem 1.5rem 1rem 0; display: inline-block; vertical-align: top; }
"""


def esc(value: object) -> str:
    """Text (or a number) as HTML text or an attribute value: it shows, it never runs."""
    return escape(str(value), quote=True)


def head(title: str, subtitle: str) -> str:
    """The page's start, through the opening of its body and its title."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n"
        f'<header><h1>{esc(title)}</h1><p class="meta">{esc(subtitle)}</p>'
    )


def tail(script: str = "") -> str:
    return (f"<script>{script}</script>" if script else "") + "\n</body></html>\n"
