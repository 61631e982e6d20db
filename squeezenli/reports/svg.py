"""Charts as inline SVG, drawn by this small module: a heatmap, a curve on the unit square and a
reliability diagram. No charting library: none on PyPI draws SVG without a browser-side
script or a heavy install (matplotlib alone is ~40 MB), and these three need ~150 lines."""

from __future__ import annotations

from collections.abc import Sequence

from squeezenli.reports.page import esc

SIZE = 300  # a chart's plotting square, in pixels
MARGIN = 48


def _frame(width: int, height: int, title: str, body: str) -> str:
    return (
        f'<figure class="chart"><svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="system-ui, sans-serif" font-size="12"><title>{esc(title)}</title>'
        f"{body}</svg><figcaption>{esc(title)}</figcaption></figure>"
    )


def heatmap(classes: Sequence[str], matrix: dict[str, dict[str, int]], title: str) -> str:
    """A confusion matrix: gold classes down, predicted across, each cell shaded by its share
    of its gold row and labelled with its count."""
    cell = 84 if len(classes) <= 4 else max(28, 336 // len(classes))
    left, top = 120, 40
    width, height = left + cell * len(classes) + 10, top + cell * len(classes) + 40
    parts = [f'<text x="{left}" y="14">predicted →</text>']
    parts.append(
        f'<text x="14" y="{top + cell * len(classes) / 2}" '
        f'transform="rotate(-90 14 {top + cell * len(classes) / 2})">gold</text>'
    )
    for j, name in enumerate(classes):
        parts.append(
            f'<text x="{left + cell * j + cell / 2}" y="32" text-anchor="middle">{esc(name)}</text>'
        )
    for i, gold in enumerate(classes):
        row = matrix.get(gold, {})
        total = sum(row.values()) or 1
        y = top + cell * i
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{esc(gold)}</text>'
        )
        for j, predicted in enumerate(classes):
            count = row.get(predicted, 0)
            share = count / total
            light = round(97 - 55 * share)
            ink = "#fff" if share > 0.55 else "#1f2328"
            x = left + cell * j
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="hsl(212, 80%, {light}%)"><title>gold {esc(gold)}, predicted '
                f"{esc(predicted)}: {count} ({share:.1%} of the row)</title></rect>"
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                f'fill="{ink}">{count}</text>'
            )
    return _frame(width, height, title, "".join(parts))


def _axes(x_name: str, y_name: str) -> str:
    """The unit square's axes, ticks at every 0.2, and their names."""
    parts = [
        f'<rect x="{MARGIN}" y="10" width="{SIZE}" height="{SIZE}" fill="none" stroke="#d0d7de"/>'
    ]
    for k in range(6):
        value = k / 5
        x, y = MARGIN + value * SIZE, 10 + SIZE - value * SIZE
        parts.append(f'<text x="{x}" y="{SIZE + 26}" text-anchor="middle">{value:.1f}</text>')
        parts.append(f'<text x="{MARGIN - 6}" y="{y + 4}" text-anchor="end">{value:.1f}</text>')
    parts.append(
        f'<text x="{MARGIN + SIZE / 2}" y="{SIZE + 44}" text-anchor="middle">{esc(x_name)}</text>'
    )
    parts.append(
        f'<text x="12" y="{10 + SIZE / 2}" transform="rotate(-90 12 {10 + SIZE / 2})" '
        f'text-anchor="middle">{esc(y_name)}</text>'
    )
    parts.append(
        f'<line x1="{MARGIN}" y1="{10 + SIZE}" x2="{MARGIN + SIZE}" y2="10" stroke="#8c959f" '
        'stroke-dasharray="4 4"/>'
    )
    return "".join(parts)


def _point(x: float, y: float) -> str:
    return f"{MARGIN + x * SIZE:.1f},{10 + SIZE - y * SIZE:.1f}"


def curve(
    xs: Sequence[float],
    ys: Sequence[float],
    marked: tuple[float, float] | None,
    mark_label: str,
    names: tuple[str, str],
    title: str,
) -> str:
    """A curve on the unit square (a ROC curve), with one point marked and named."""
    line = " ".join(_point(x, y) for x, y in zip(xs, ys))
    parts = [
        _axes(*names),
        f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>',
    ]
    if marked is not None:
        x, y = _point(*marked).split(",")
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="5" fill="#cf222e"><title>{esc(mark_label)}</title>'
            f'</circle><text x="{float(x) + 8}" y="{float(y) + 14}" fill="#cf222e">'
            f"{esc(mark_label)}</text>"
        )
    return _frame(MARGIN + SIZE + 20, SIZE + 56, title, "".join(parts))


def reliability(bins: Sequence[dict], title: str) -> str:
    """A reliability diagram: per bin of predicted probability, the share that was the
    class (a bar, its count in its tooltip), against the diagonal a calibrated model keeps."""
    parts = [_axes("predicted P(entailment)", "share that was entailment")]
    for item in bins:
        if item["entailment"] is None:
            continue
        x = MARGIN + item["low"] * SIZE + 2
        width = (item["high"] - item["low"]) * SIZE - 4
        height = item["entailment"] * SIZE
        parts.append(
            f'<rect x="{x:.1f}" y="{10 + SIZE - height:.1f}" width="{width:.1f}" '
            f'height="{height:.1f}" fill="#54aeff" fill-opacity="0.75"><title>'
            f"{item['low']:.1f}-{item['high']:.1f}: {item['pairs']} pairs, mean predicted "
            f"{item['mean']:.3f}, {item['entailment']:.1%} entailment</title></rect>"
        )
    return _frame(MARGIN + SIZE + 20, SIZE + 56, title, "".join(parts))
