"""Sentence splitters compared for chunking documents (not a test).

    python bench/sentence_splitters.py [--data ../shared/data]

Accuracy: pySBD's English Golden Rules (48 cases) and its other English test cases, a case
counted right when the splitter's sentences, stripped, equal the expected ones. Speed: the
documents of factual/frank.jsonl, split once each (characters per second). Splitters that
are not installed are listed as such: `pip install pysbd syntok blingfire`. nltk's punkt is
left out: its model is a separate download (nltk.download), which squeezenli cannot count on
offline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def splitters() -> dict[str, Callable[[str], list[str]] | str]:
    found: dict[str, Callable[[str], list[str]] | str] = {}
    try:
        import pysbd

        segmenter = pysbd.Segmenter(language="en", clean=False, char_span=False)
        found["pysbd 0.3"] = segmenter.segment
    except ImportError:
        found["pysbd"] = "not installed"
    try:
        from syntok import segmenter as syntok

        def split_syntok(text: str) -> list[str]:
            sentences = []
            for paragraph in syntok.analyze(text):
                for sentence in paragraph:
                    sentences.append("".join(t.spacing + t.value for t in sentence))
            return sentences

        found["syntok 1.4"] = split_syntok
    except ImportError:
        found["syntok"] = "not installed"
    try:
        import blingfire

        found["blingfire 0.1"] = lambda text: blingfire.text_to_sentences(text).split("\n")
    except ImportError:
        found["blingfire"] = "not installed"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    folder = args.data / "sentence_splitter"
    sets = {
        "golden rules": folder / "pysbd_golden_rules_en.jsonl",
        "other English cases": folder / "pysbd_test_english_cases.jsonl",
    }
    cases = {name: [json.loads(line) for line in path.open()] for name, path in sets.items()}
    documents = [
        json.loads(line)["document"] for line in (args.data / "factual/frank.jsonl").open()
    ]
    chars = sum(map(len, documents))
    for name, split in splitters().items():
        if isinstance(split, str):
            print(f"{name:>14}: {split}")
            continue
        scores = []
        for set_name, rows in cases.items():
            right = sum(
                [s.strip() for s in split(r["text"]) if s.strip()]
                == [e.strip() for e in r["expected"]]
                for r in rows
            )
            scores.append(f"{set_name} {right}/{len(rows)}")
        started = time.perf_counter()
        for document in documents:
            split(document)
        speed = chars / (time.perf_counter() - started)
        print(f"{name:>14}: {', '.join(scores)}; {speed / 1e3:,.0f}K characters/s on FRANK")
    pieces_and_scaling(documents)


def pieces_and_scaling(documents: list[str]) -> None:
    """pySBD's time against its input's length, whole and as squeezenli feeds it (a line at a
    time, in pieces of at most SPLIT_CHARS: tasks/documents.py)."""
    try:
        import pysbd
    except ImportError:
        return
    from squeezenli.tasks.documents import sentence_spans

    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=False)
    text = " ".join(documents)
    for size in (25_000, 100_000):
        started = time.perf_counter()
        segmenter.segment(text[:size])
        whole = time.perf_counter() - started
        started = time.perf_counter()
        sentence_spans(text[:size])
        pieces = time.perf_counter() - started
        print(f"pySBD on {size:,} characters: {whole:.1f} s whole, {pieces:.2f} s in pieces")


if __name__ == "__main__":
    main()
