"""`eval --report FILE`: one self-contained page of an evaluation: the figures eval prints, the
confusion matrix as a heatmap, the ROC curve of P(entailment) with the chosen threshold
marked, a reliability diagram, and the figures of each group of `--by`. No script: the charts
are inline SVG (reports/svg.py)."""

from __future__ import annotations

from typing import Any

from squeezenli.reports import svg
from squeezenli.reports.page import esc, head, tail


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "—" if value is None else esc(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head_row = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_number(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head_row}</tr></thead><tbody>{body}</tbody></table>"


def _figures(result: dict) -> str:
    rows = [
        ["accuracy", result.get("accuracy")],
        ["balanced accuracy", result.get("balanced_accuracy")],
        ["macro F1", result.get("macro_f1")],
    ]
    if "roc_auc" in result:
        rows.append(["ROC AUC (P(entailment))", result["roc_auc"]])
    best = result.get("best_threshold")
    if isinstance(best, dict):
        rows.append(["best threshold", best.get("threshold")])
        rows.append(["its balanced accuracy", best.get("balanced_accuracy")])
    counts = result.get("counts", {})
    rows += [[f"rows {name}", value] for name, value in counts.items()]
    return _table(["figure", "value"], rows)


def _per_class(result: dict) -> str:
    per = result.get("per_class") or result.get("per_label") or {}
    names = ["precision", "recall", "f1", "support", "predicted"]
    rows = [[name, *(figures.get(k) for k in names)] for name, figures in per.items()]
    return _table(["class", *names], rows) if rows else ""


def _groups(result: dict) -> str:
    by = result.get("by")
    if not isinstance(by, dict):
        return ""
    names = ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc"]
    rows = [
        [group, *(figures.get(k) for k in names), figures.get("counts", {}).get("scored")]
        for group, figures in by.get("groups", {}).items()
    ]
    title = f"<h2>By {esc(by.get('field'))}</h2>"
    return title + _table(["group", *(n.replace("_", " ") for n in names), "rows"], rows)


def eval_report(result: dict, charts: dict | None, title: str) -> str:
    """The page: `result` is eval's report (what --json prints), `charts` its curves
    (tasks/evaluation.py's curves) or None where there are none (zero-shot)."""
    model = f"{result.get('model')} ({result.get('precision')})"
    subtitle = f"{model}; squeezenli {result.get('squeezenli', '')}"
    parts = [head(title, subtitle), "</header><main>", "<h2>Figures</h2>", _figures(result)]
    parts.append(_per_class(result))
    classes, matrix = result.get("classes"), result.get("confusion")
    pictures = []
    if isinstance(classes, list) and isinstance(matrix, dict):
        pictures.append(svg.heatmap(classes, matrix, "Confusion matrix (rows: gold)"))
    roc = (charts or {}).get("roc")
    if roc:
        mark = f"threshold {roc['threshold']:.3f}"
        pictures.append(
            svg.curve(
                roc["fpr"],
                roc["tpr"],
                tuple(roc["at"]),
                mark,
                ("false positive rate", "true positive rate"),
                f"ROC of P(entailment): AUC {roc['auc']:.3f}",
            )
        )
    if charts and charts.get("reliability"):
        pictures.append(svg.reliability(charts["reliability"], "Reliability of P(entailment)"))
    if pictures:
        parts += ["<h2>Charts</h2>", *pictures]
    parts.append(_groups(result))
    parts.append("</main>")
    return "".join(parts) + tail()
