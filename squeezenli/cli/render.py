"""Rich tables for people; every function prints to stdout, the results stream."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from squeezenli.choices import LabelSource
from squeezenli.models.build import built_precision
from squeezenli.models.labels import LabelMap
from squeezenli.runtime.labelcheck import LabelCheck
from squeezenli.runtime.prediction import Prediction


class _Console(Console):
    """rich's Console, except that a reader that went away (`| head -1`) ends the run as
    for every other output (exit 0, cli.py), not with rich's exit 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


# How the footer of a single answer says where the label order came from.
LABEL_SOURCES = {
    LabelSource.LABEL_ORDER: "as --label-order gives it",
    LabelSource.MEASURED: "measured on the check pairs ('squeezenli model info')",
    LabelSource.KNOWN: "squeezenli's table of known models ('squeezenli model info' says why)",
    LabelSource.UNNAMED: "unknown: the model names only LABEL_0..n (pass --label-order)",
    LabelSource.CONFIG: "the model's config",
}


def _console() -> Console:
    return _Console(highlight=False)


def prediction_table(
    premise: str, hypothesis: str, prediction: Prediction, labels: LabelMap
) -> None:
    table = Table(title=f"prediction: [bold]{prediction.label}[/bold]", title_justify="left")
    table.add_column("label")
    table.add_column("probability", justify="right")
    table.add_column("")
    for name, value in prediction.scores.items():
        style = "bold" if name == prediction.label else ""
        table.add_row(name, f"{value:.4f}", "█" * round(value * 30), style=style)
    console = _console()
    console.print(f"[dim]premise:[/dim]    {premise}", markup=True)
    console.print(f"[dim]hypothesis:[/dim] {hypothesis}", markup=True)
    console.print(table)
    if prediction.truncated:
        console.print(
            "[dim]the pair was cut to the model's length (--long-input chunk reads it all)[/dim]"
        )
    if prediction.evidence is not None:
        evidence = prediction.evidence
        console.print(
            f"[dim]deciding window: characters {evidence.start}-{evidence.end} of the premise, "
            f"one of {evidence.windows}[/dim]"
        )
    if labels.kind is not LabelSource.CONFIG:
        console.print(f"[dim]label order: {LABEL_SOURCES[labels.kind]}[/dim]")


def info_tables(info: dict) -> None:
    console = _console()
    console.print(f"[bold]{info['model']}[/bold] @ {info['revision'] or 'local folder'}")
    console.print(f"folder: {info['folder']}")
    files = Table(title="files", title_justify="left")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    for name, size in info["files"].items():
        files.add_row(name, f"{size:,}")
    console.print(files)
    for precision, path in info["built"].items():
        console.print(f"built ONNX ({precision}): {path}", soft_wrap=True)
    used = (info["weights"], info["measured_against"])
    others = [name for name in info["onnx_files"] if name not in used]
    if others:
        console.print(f"other ONNX files (--onnx-file): {', '.join(others)}")
    labels = Table(title="label mapping", title_justify="left")
    labels.add_column("index", justify="right")
    labels.add_column("label")
    for index, name in info["labels"].items():
        labels.add_row(index, name)
    console.print(labels)
    console.print(f"source: {info['label_source_detail']}")
    check = info["label_check"]
    if check is not None:
        order = ",".join(check["observed_order"]) if check["observed_order"] else "inconclusive"
        console.print(f"measured at build: {order} (wins per class: {check['wins']})")
    agreement = info["int8_agreement"]
    fast, exact = "int8", "fp32"
    if info["measured_against"] is not None:  # a repo's variant against its fp32 export
        fast, exact = info["weights"], info["measured_against"]
    if agreement is None:
        console.print(f"{fast} agreement: not measured yet (on the first int8 or auto run)")
    else:
        verdict = "passes" if agreement["passes"] else "fails"
        console.print(
            f"{fast} agreement with {exact} on {agreement['pairs']} calibration pairs: "
            f"labels {agreement['label_agreement']:.2%}, largest probability difference "
            f"{agreement['max_difference']:.4f}, mean {agreement['mean_difference']:.4f}, "
            f"moved by batching {_batch_difference(agreement)} "
            f"({verdict} auto's check)"
        )
    speed = info["int8_speed"]
    if speed is None:
        console.print(f"{fast} speed on this CPU: not measured yet (on the first int8 or auto run)")
    else:
        verdict = "pays" if speed["pays"] else "does not pay"
        console.print(
            f"{fast} speed on this CPU ({speed['cpu']}), {speed['pairs']} calibration pairs: "
            f"{speed['int8_pairs_per_s']:.1f} pairs/s against {exact}'s "
            f"{speed['fp32_pairs_per_s']:.1f}, {speed['int8_cpu_s']:.2f} against "
            f"{speed['fp32_cpu_s']:.2f} CPU s: {speed['speedup']:.2f}x ({verdict} for auto)"
        )


def _batch_difference(agreement: dict) -> str:
    moved = agreement.get("batch_difference")
    return "not measured" if moved is None else f"{moved:.4f}"


def label_check_table(result: LabelCheck) -> None:
    table = Table(title="check-labels: which output wins for each class", title_justify="left")
    table.add_column("pairs whose answer is")
    for index, name in enumerate(result.mapping.names):
        table.add_column(f"output {index} ({name})", justify="right")
    for c, gold in enumerate(result.classes):
        table.add_row(gold, *(str(int(n)) for n in result.counts[c]))
    console = _console()
    console.print(table)
    if result.agrees:
        console.print("the model agrees with the mapping in use: " + ",".join(result.mapping.names))
    elif result.conclusive:
        console.print(
            "[bold]the model disagrees with the mapping in use[/bold] "
            f"({','.join(result.mapping.names)}); it behaves as "
            f"--label-order {','.join(result.observed_order or ())}"
        )
    else:
        console.print("inconclusive: no clear output per class (random or non-NLI weights?)")


def batch_table(rows: list, labels: LabelMap) -> None:
    """Scored rows for people: the pair, the prediction and each class's probability."""
    table = Table()
    table.add_column("premise", overflow="fold")
    table.add_column("hypothesis", overflow="fold")
    table.add_column("prediction")
    names = [labels.names[i] for i in labels.ordered()]
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("cut")
    for (premise, hypothesis), prediction in rows:
        scores = [f"{prediction.scores[n]:.3f}" for n in names]
        cut = "yes" if prediction.truncated else ""
        table.add_row(premise, hypothesis, prediction.label, *scores, cut)
    _console().print(table)


def zero_shot_table(results: list, multi_label: bool) -> None:
    """Each text with its labels, highest score first."""
    table = Table(title="multi-label: each label on its own" if multi_label else None)
    table.add_column("text", overflow="fold")
    table.add_column("label")
    table.add_column("score", justify="right")
    table.add_column("")
    for result in results:
        for rank, (label, value) in enumerate(zip(result.labels, result.scores)):
            text = result.text if rank == 0 else ""
            style = "bold" if rank == 0 else ""
            bar = "█" * round(value * 20)
            table.add_row(text, label, f"{value:.4f}", bar, style=style, end_section=False)
        table.add_section()
    _console().print(table)


def evaluation_tables(report: dict) -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of an eval run."""
    console = _console()
    counts = report["counts"]
    console.print(
        f"accuracy [bold]{report['accuracy']:.4f}[/bold] ({counts['correct']}/{counts['scored']}"
        f" rows), macro F1 {report['macro_f1']:.4f}"
        + (f", {counts['failed']} rows failed" if counts["failed"] else "")
        + (f", {counts['unlabelled']} unlabelled" if counts.get("unlabelled") else "")
    )
    if "balanced_accuracy" in report:
        extra = f"balanced accuracy {report['balanced_accuracy']:.4f}"
        if report.get("roc_auc") is not None:
            best = report["best_threshold"]
            extra += (
                f", ROC AUC {report['roc_auc']:.4f}, best threshold {best['threshold']:.4f} "
                f"(balanced accuracy {best['balanced_accuracy']:.4f} on these rows)"
            )
        console.print(extra)
    per_class = Table(title="per class", title_justify="left")
    for column in ("class", "precision", "recall", "F1", "support", "predicted"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name, row in report["per_class"].items():
        per_class.add_row(
            name,
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(row["support"]),
            str(row["predicted"]),
        )
    console.print(per_class)
    confusion = Table(title="confusion (rows: gold, columns: predicted)", title_justify="left")
    confusion.add_column("gold \\ predicted")
    for name in report["classes"]:
        confusion.add_column(name, justify="right")
    for gold, row in report["confusion"].items():
        confusion.add_row(gold, *(str(row[p]) for p in report["classes"]))
    console.print(confusion)
    if "by" in report:
        groups = Table(title=f"by {report['by']['field']}", title_justify="left")
        for column in ("value", "rows", "accuracy", "balanced accuracy", "macro F1", "unlabelled"):
            groups.add_column(column, justify="left" if column == "value" else "right")
        for value, figures in report["by"]["groups"].items():
            groups.add_row(
                value,
                str(figures["counts"]["scored"]),
                f"{figures['accuracy']:.4f}",
                f"{figures['balanced_accuracy']:.4f}",
                f"{figures['macro_f1']:.4f}",
                str(figures["counts"]["unlabelled"]),
            )
        console.print(groups)


def cached_models_table(models: list, local_builds: list, cache) -> None:
    """Models in the cache, their revisions, download and build sizes."""
    table = Table(title=f"cache: {cache}", title_justify="left")
    table.add_column("model")
    table.add_column("revisions")
    table.add_column("downloaded", justify="right")
    table.add_column("built")
    table.add_column("built size", justify="right")
    for model in models:
        table.add_row(
            model.repo_id,
            ", ".join(r[:10] for r in model.revisions) or "-",
            _mib(model.downloaded_bytes),
            ", ".join(built_precision(p) for p in model.built) or "-",
            _mib(model.built_bytes),
        )
    if local_builds:
        size = sum(p.stat().st_size for p in local_builds)
        table.add_row("(local folders)", "-", "-", f"{len(local_builds)} built", _mib(size))
    _console().print(table)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def zero_shot_evaluation_tables(report: dict) -> None:
    """A zero-shot eval run: its headline figures, per label precision/recall/F1, and
    (single-label) the confusion of gold against chosen labels."""
    console = _console()
    counts = report["counts"]
    if report["multi_label"]:
        head = f"exact match [bold]{report['exact_match']:.4f}[/bold]"
    else:
        head = (
            f"accuracy [bold]{report['accuracy']:.4f}[/bold], balanced accuracy "
            f"{report['balanced_accuracy']:.4f}"
        )
    micro = report["micro"]
    console.print(
        f"{head} ({counts['correct']}/{counts['scored']} rows), macro F1 "
        f"{report['macro_f1']:.4f}, micro F1 {micro['f1']:.4f}"
        + (f", {counts['failed']} rows failed" if counts["failed"] else "")
        + (f", {counts['unlabelled']} unlabelled" if counts.get("unlabelled") else "")
    )
    per_label = Table(title="per label", title_justify="left")
    for column in ("label", "precision", "recall", "F1", "support", "predicted"):
        per_label.add_column(column, justify="left" if column == "label" else "right")
    for name, row in report["per_label"].items():
        per_label.add_row(
            name,
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(row["support"]),
            str(row["predicted"]),
        )
    console.print(per_label)
    if "confusion" in report:
        columns = [*report["candidate_labels"], "(none)"]
        confusion = Table(title="confusion (rows: gold, columns: chosen)", title_justify="left")
        confusion.add_column("gold \\ chosen")
        for name in columns:
            confusion.add_column(name, justify="right")
        for gold, row in report["confusion"].items():
            confusion.add_row(gold, *(str(row[name]) for name in columns))
        console.print(confusion)
    if "by" in report:
        groups = Table(title=f"by {report['by']['field']}", title_justify="left")
        key = "exact_match" if report["multi_label"] else "accuracy"
        for column in ("value", "rows", key.replace("_", " "), "macro F1", "unlabelled"):
            groups.add_column(column, justify="left" if column == "value" else "right")
        for value, figures in report["by"]["groups"].items():
            groups.add_row(
                value,
                str(figures["counts"]["scored"]),
                f"{figures[key]:.4f}",
                f"{figures['macro_f1']:.4f}",
                str(figures["counts"]["unlabelled"]),
            )
        console.print(groups)


EVIDENCE_CHARS = 120  # a table cites this much of the evidence at most (the row has it all)
VERDICT_STYLES = {"supported": "green", "contradicted": "red", "not_supported": "yellow"}


def check_table(rows: list) -> None:
    """Checked rows for people: each claim, its verdict (coloured), its entailment
    probability and its evidence, cut to the terminal's width."""
    from rich.markup import escape

    table = Table()
    table.add_column("row", overflow="fold", max_width=16)
    table.add_column("claim", overflow="fold", ratio=1, min_width=16)
    table.add_column("verdict", no_wrap=True, min_width=13)
    table.add_column("P(entail)", justify="right", no_wrap=True, min_width=9)
    table.add_column("evidence", overflow="fold", ratio=1, min_width=10)
    for where, fields in rows:
        where = where.rsplit("/", 1)[-1]  # the file's name and line
        claims = fields.get("claims") or []
        if not claims:
            table.add_row(escape(where), "(no claims)", "", "", "", end_section=True)
        for index, claim in enumerate(claims):
            verdict = str(claim.get("verdict"))
            evidence = claim.get("evidence") or {}
            entail = (claim.get("scores") or {}).get("entailment")
            cited = " ".join(f"[{evidence.get('source', '')}] {evidence.get('text', '')}".split())
            cited = cited if len(cited) <= EVIDENCE_CHARS else cited[: EVIDENCE_CHARS - 1] + "…"
            table.add_row(
                escape(where) if index == 0 else "",
                escape(str(claim.get("text", ""))),
                f"[{VERDICT_STYLES.get(verdict, 'default')}]{escape(verdict)}[/]",
                "" if entail is None else f"{entail:.3f}",
                escape(cited),
                end_section=index == len(claims) - 1,
            )
    _console().print(table)
