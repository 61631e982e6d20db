"""Score a Ray Dataset of pairs on a Ray cluster with the same engine `squeezenli batch` uses.

Each Ray actor holds one loaded model (one onnxruntime session, threads sized to the CPUs the
actor is given) and scores the batches Ray hands it through score_records, so validation,
batching and scores are those of the local path. The model is fetched into each node's
Hugging Face cache and built there once: the downloads and the build lock are per node.

    import ray
    from squeezenli.ray_engine import score_dataset, split_errors

    ds = ray.data.read_json("s3://bucket/pairs/")
    scored, errors = split_errors(score_dataset(ds, precision="int8"))
    scored.write_parquet("s3://bucket/scored/")

Needs `pip install 'squeezenli[ray]'`.
"""

from __future__ import annotations

from typing import Any

import orjson

from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, DEFAULT_PRECISION
from .io import Record, choose_pair_fields

ERROR = "error"  # the column that says why a row was not scored (null when it was)


class PairScorer:
    """The callable class Ray Data runs in each actor: load once, score many batches.

    Typed rows (Parquet, CSV, a Dataset built by the caller) come back as columns; JSON
    lines (a `text` column, as ray.data.read_text gives) are parsed here, row by row, so a
    bad line is one row's error as in the local path, and come back as output lines."""

    def __init__(
        self, model_options: dict[str, Any], fields: dict[str, str | None], lines: bool = False
    ) -> None:
        from .model import load_model

        self.nli = load_model(progress=False, **model_options)
        self.fields = fields
        self.lines = lines

    def __call__(self, batch):
        if self.lines:
            return self._score_lines(batch)
        return self._score_rows(batch)

    def _score_lines(self, batch):
        """A batch of JSON lines -> columns `json` (the output line) and `error`."""
        import pandas

        from .io import read_jsonl
        from .scoring import score_records

        records, texts = [], []
        for text in batch["text"]:
            raw = text.encode() if isinstance(text, str) else bytes(text)
            record = next(read_jsonl([raw], "<ray>"), None)  # None: a blank line, skipped
            if record is not None:
                records.append(record)
                texts.append(raw)
        out, errors = [], []
        for outcome in score_records(self.nli, records, on_error="skip", **self.fields):
            if outcome.error:
                out.append(None)
                errors.append(outcome.error.split(": ", 1)[-1])  # without "<ray>:N"
            else:
                row = {**outcome.record.data, **outcome.prediction.fields()}
                out.append(orjson.dumps(row).decode())
                errors.append(None)
        return pandas.DataFrame({"json": out, ERROR: errors, "line": [t.decode() for t in texts]})

    def _score_rows(self, batch):
        """A pandas batch in, the same rows out with prediction, scores and error added."""
        from .scoring import score_records

        rows = batch.to_dict("records")
        records = [Record("<ray>", i + 1, _plain(row)) for i, row in enumerate(rows)]
        predictions, scores, errors = [], [], []
        for outcome in score_records(self.nli, records, on_error="skip", **self.fields):
            if outcome.error:
                predictions.append(None)
                scores.append(None)
                errors.append(outcome.error.split(": ", 1)[-1])  # without "<ray>:N"
            else:
                predictions.append(outcome.prediction.label)
                scores.append(outcome.prediction.rounded_scores())
                errors.append(None)
        batch = batch.copy()
        batch["prediction"] = predictions
        batch["scores"] = scores
        batch[ERROR] = errors
        return batch


def _plain(row: dict) -> dict:
    """Arrow/pandas values as the JSON types the local readers give (None for missing)."""
    import math

    plain = {}
    for key, value in row.items():
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item() if getattr(value, "ndim", 0) == 0 else value.tolist()
        if isinstance(value, float) and math.isnan(value):
            value = None
        plain[key] = value
    return plain


def score_dataset(
    ds,
    *,
    model: str | None = None,
    revision: str | None = None,
    precision: str = DEFAULT_PRECISION,
    label_order: str | None = None,
    max_length: int | None = None,
    premise_field: str | None = None,
    hypothesis_field: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    rows_per_task: int = 1024,
    actors: int | None = None,
    cpus_per_actor: int = 1,
    json_lines: bool = False,
):
    """A Ray Dataset of pairs -> the same rows with `prediction`, `scores` (a struct, one
    field per class) and `error` (null for scored rows; see split_errors). Every row comes
    out: none is dropped. With json_lines, the Dataset holds JSON lines in a `text` column
    (ray.data.read_text) and the result holds `json` (the output line), `error` and `line`."""
    options = {
        "model": model,
        "revision": revision,
        "precision": precision,
        "label_order": label_order,
        "max_length": max_length,
        "threads": cpus_per_actor,
        "batch_size": batch_size,
        "batch_tokens": batch_tokens,
    }
    if not json_lines:
        # Chosen once, from the schema, so that every batch reads the same columns.
        premise_field, hypothesis_field = choose_pair_fields(
            list(ds.schema().names), premise_field, hypothesis_field, "the dataset"
        )
    fields = {"premise_field": premise_field, "hypothesis_field": hypothesis_field}
    from ray.data import ActorPoolStrategy

    pool, request = _actor_pool(cpus_per_actor)
    return ds.map_batches(
        PairScorer,
        fn_constructor_kwargs={"model_options": options, "fields": fields, "lines": json_lines},
        batch_size=rows_per_task,
        batch_format="pandas",
        compute=ActorPoolStrategy(size=actors or pool),
        num_cpus=request,
    )


def _actor_pool(cpus_per_actor: int) -> tuple[int, float]:
    """(actors, CPUs each asks Ray for). Half a CPU stays free for Ray Data's own tasks
    (listing files, reading, writing): with every CPU held by scoring actors they never run
    and the job waits for ever. An actor still runs cpus_per_actor threads."""
    import ray

    cpus = float(ray.cluster_resources().get("CPU", 1))
    request = max(0.25, min(float(cpus_per_actor), cpus - 0.5))
    return max(1, int((cpus - 0.5) // request)), request


def split_errors(scored):
    """(scored rows without the error column, rows that could not be scored)."""
    good = scored.filter(lambda row: row[ERROR] is None).drop_columns([ERROR])
    bad = scored.filter(lambda row: row[ERROR] is not None).drop_columns(["prediction", "scores"])
    return good, bad


def read_pairs(paths: list[str], fmt: str | None):
    """(a Ray Dataset, whether it holds JSON lines) for files, directories, globs or any
    path Ray Data reads (object-store URLs included, when the cluster can reach them).
    JSONL is read as lines and parsed by the actors, so a bad line is one row's error;
    CSV, TSV and Parquet are read by Ray as typed columns."""
    import ray.data

    kind = fmt or _kind_of(paths[0])
    # Reading takes no CPU of its own: the scoring actors hold the cores, and a read task
    # waiting for one of them would wait for ever.
    if kind == "jsonl":
        return ray.data.read_text(paths, num_cpus=0), True
    if kind == "parquet":
        return ray.data.read_parquet(paths, num_cpus=0), False
    if kind in ("csv", "tsv"):
        from pyarrow import csv

        options = {"parse_options": csv.ParseOptions(delimiter="," if kind == "csv" else "\t")}
        return ray.data.read_csv(paths, num_cpus=0, **options), False
    raise ValueError(f"unknown format {kind!r}")


def _kind_of(path: str) -> str:
    from .io import detect_format

    if path.rstrip("/").lower().endswith(".parquet"):
        return "parquet"
    return detect_format(path, None)
