"""check's citations measured as the factual-consistency papers measure, on a trained model
(not a test).

    python scripts/make_trained_standin.py
    python bench/citations.py ~/.cache/squeezenli-dev/trained \
        --label-order neutral,contradiction,entailment [--rows 40] [--sets wice,frank]

For each development set of ../shared/data/factual/ (document, claim, consistent/inconsistent):
the first --rows rows scored three ways, each in a fresh process (peak memory by wait4,
rows/s including start-up): the pair truncated (`batch`), `check` citing the deciding window
(`--evidence window`) and `check` citing sentences (the default). For each: balanced accuracy
(at the best threshold on these rows) and ROC AUC of the score against the gold label, the
median characters and document lines the evidence spans, and the pairs scored per claim. On
WiCE, whose rows list the lines that support each claim, how often the evidence covers an
annotated supporting line, beside the line the same model picks when every line of the
document is scored alone against the claim. Prints a Markdown table, the CPU and the model.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, measure_rss  # noqa: E402
from parity import cpu_name  # noqa: E402

MODES = ("truncate", "window", "sentence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--label-order")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--sets", help="comma-separated file names without .jsonl [default: all]")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "factual")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    wanted = set(args.sets.split(",")) if args.sets else None
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; model {args.model} ({args.precision})")
    print(
        "| set | rows | mode | bal. acc. | ROC AUC | evidence chars | evidence lines "
        "| pairs/claim | tokens/claim | rows/s | peak MiB | WiCE hit |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in sorted(args.data.glob("*.jsonl")):
        if wanted is not None and path.stem not in wanted:
            continue
        rows = [json.loads(line) for line in path.open()][: args.rows]
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / path.name
            source.write_text("".join(json.dumps(r) + "\n" for r in rows))
            for mode in MODES:
                _measure(args, path.stem, rows, source, mode)
        if path.stem == "wice":
            _best_lines(args, rows)


def _measure(args, name: str, rows: list[dict], source: Path, mode: str) -> None:
    command = [sys.executable, __file__, args.model, "--child", mode, "--input", str(source)]
    command += ["--precision", args.precision]
    if args.label_order:
        command += ["--label-order", args.label_order]
    run = measure_rss(command, dict(os.environ))
    out = [json.loads(line) for line in run.out.splitlines()]
    scores = np.array([o["score"] for o in out])
    positive = np.array([r["label"] == "consistent" for r in rows])
    from squeezenli.tasks.evaluation import best_threshold, roc_auc

    balanced, _ = best_threshold(scores, positive)
    auc = roc_auc(scores, positive) or float("nan")
    chars = [e["end"] - e["start"] for o in out for e in o["evidence"]]
    lines = [
        len(_lines_of(r["document"], e["start"], e["end"]))
        for r, o in zip(rows, out)
        for e in o["evidence"]
    ]
    claims = sum(len(o["evidence"]) for o in out)
    hit = _hit_rate(rows, out) if name == "wice" else None
    print(
        f"| {name} | {len(rows)} | {mode} | {balanced:.3f} | {auc:.3f} "
        f"| {np.median(chars):.0f} | {np.median(lines):.1f} "
        f"| {sum(o['pairs'] for o in out) / max(claims, 1):.1f} "
        f"| {sum(o['tokens'] for o in out) / max(claims, 1):.0f} | {len(rows) / run.wall:.2f} "
        f"| {run.peak_mib:.0f} | {'' if hit is None else f'{hit:.1%}'} |",
        flush=True,
    )


def _child(args) -> None:
    """One mode over the rows: per row its score, its evidence spans and the pairs scored."""
    from squeezenli import load_model
    from squeezenli.records.readers import Record
    from squeezenli.tasks.claims import check_records
    from squeezenli.tasks.scoring import score_records

    nli = load_model(
        args.model, precision=args.precision, label_order=args.label_order, progress=False
    )
    rows = [json.loads(line) for line in args.input.open()]
    records = [Record(str(args.input), n, r) for n, r in enumerate(rows, 1)]
    if args.child == "truncate":
        for r in score_records(nli, records, premise_field="document", hypothesis_field="claim"):
            assert r.output is not None
            whole = {"start": 0, "end": len(r.record.data["document"])}  # type: ignore[index]
            tokens = nli.max_length  # at most: the pair cut to the model's length
            scored = {"score": r.output.scores["entailment"], "pairs": 1, "tokens": tokens}
            print(json.dumps({**scored, "evidence": [whole]}))
        return
    for r in check_records(
        nli, records, source_field="document", text_field="claim", evidence=args.child
    ):
        assert r.output is not None, r.error
        evidence = [{"start": c.evidence_start, "end": c.evidence_end} for c in r.output.claims]
        if args.child == "window":
            evidence = [{"start": c.window.start, "end": c.window.end} for c in r.output.claims]
        cost = {"pairs": r.output.pairs, "tokens": r.output.tokens}
        print(json.dumps({"score": r.output.score, "evidence": evidence, **cost}))


def _line_starts(document: str) -> list[int]:
    starts, at = [], 0
    for line in document.split("\n"):
        starts.append(at)
        at += len(line) + 1
    return starts


def _lines_of(document: str, start: int, end: int) -> list[int]:
    """The indices of the document's lines (split at newlines, as WiCE numbers them) that
    [start, end) touches."""
    starts = _line_starts(document)
    first = bisect.bisect_right(starts, start) - 1
    last = bisect.bisect_right(starts, max(start, end - 1)) - 1
    return list(range(first, last + 1))


def _supporting(row: dict) -> set[int]:
    return {line for group in row.get("supporting_sentences") or [] for line in group}


def _hit_rate(rows: list[dict], out: list[dict]) -> float:
    """Of the rows with annotated supporting lines, the share whose first claim's evidence
    covers one of them."""
    hits = [
        bool(
            set(_lines_of(r["document"], o["evidence"][0]["start"], o["evidence"][0]["end"]))
            & _supporting(r)
        )  # fmt: skip
        for r, o in zip(rows, out)
        if _supporting(r)
    ]
    return float(np.mean(hits)) if hits else float("nan")


def _best_lines(args, rows: list[dict]) -> None:
    """The line a model picks when every line is scored alone: how often it is annotated."""
    from squeezenli import load_model

    nli = load_model(
        args.model, precision=args.precision, label_order=args.label_order, progress=False
    )
    entail = nli.labels.names.index("entailment")
    hits = []
    for row in rows:
        if not _supporting(row):
            continue
        lines = row["document"].split("\n")
        usable = [i for i, line in enumerate(lines) if line.strip()]
        probs = nli.probabilities([(lines[i], row["claim"]) for i in usable])
        hits.append(usable[int(np.argmax(probs[:, entail]))] in _supporting(row))
    print(
        f"| wice | {len(rows)} | every line alone, best | | | | 1.0 | | | | | {np.mean(hits):.1%} |"
    )


if __name__ == "__main__":
    main()
