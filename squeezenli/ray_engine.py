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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from squeezenli.choices import OnError
from squeezenli.records.readers import Record, RowError, RowFailure, choose_pair_fields
from squeezenli.runtime.spec import ModelSpec
from squeezenli.tasks.options import CheckOptions, PairOptions, TaskOptions, ZeroShotOptions

ERROR = "error"  # the column that says why a row was not scored (null when it was)
# Older Ray Data with pandas 3 loses rows or files scored ones as failed (ray-project/ray#60402).
MIN_RAY_FOR_PANDAS_3 = (2, 56)
LINE_COLUMNS = ("source", "number", "text")  # where a JSON line came from, and the line


def result_fields(options: TaskOptions, prefix: str = "", renames=None):
    """The ResultFields (tasks/rows.py) a task's rows get, from its options."""
    from squeezenli.tasks.rows import ResultFields

    return ResultFields(options.result_names(), prefix, renames)


class PairScorer:
    """The callable class Ray Data runs in each actor: load once, score many batches.

    Typed rows (Parquet, CSV, a Dataset built by the caller) come back as columns; JSON
    lines (a `text` column, as ray.data.read_text gives) are parsed here, row by row, so a
    bad line is one row's error as in the local path, and come back as output lines."""

    def __init__(
        self, spec: ModelSpec, options: TaskOptions, lines: bool = False, shape=None
    ) -> None:
        from squeezenli.runtime.model import load_model
        from squeezenli.tasks.scorer import LocalScorer

        self.scorer = LocalScorer(load_model(spec, progress=False))
        self.options = options
        self.lines = lines
        self.shape = shape or result_fields(options)  # names of the fields rows gain

    def _results(self, records: list[Record]):
        """Each record's Result, bad rows among them (the local path's functions)."""
        return self.scorer.results(records, self.options, on_error=OnError.SKIP)

    def __call__(self, batch):
        if self.lines:
            return self._score_lines(batch)
        return self._score_rows(batch)

    def _score_lines(self, batch):
        """Numbered JSON lines (read_pairs) -> `json` (the output line) and `error`, plus the
        line's `source`, `number` and `text` (the raw line, kept for rows that failed)."""
        import pandas

        from squeezenli.records.readers import parse_jsonl_line
        from squeezenli.records.writers import dump_json

        records = []
        for source, number, text in zip(batch["source"], batch["number"], batch["text"]):
            record = parse_jsonl_line(bytes(text), str(source), int(number))
            if record is not None:  # None: a line holding only a byte-order mark
                records.append((record, bytes(text)))
        out, errors, texts = [], [], []
        outcomes = self._results([r for r, _ in records])
        for outcome, (_, text) in zip(outcomes, records):
            error = outcome.error
            if not error:
                try:
                    row = self.shape.row(outcome.record, outcome.output.fields())
                    out.append(dump_json(row).decode())
                    texts.append(None)
                except RowFailure as failure:  # an input field the result would overwrite
                    error = failure.error
            if error:
                out.append(None)
                texts.append(text)
            errors.append(error_struct(error) if error else None)
        sources = [r.source for r, _ in records]
        numbers = [r.line for r, _ in records]
        columns = dict(zip(LINE_COLUMNS, (sources, numbers, texts)))
        return pandas.DataFrame({"json": out, ERROR: errors, **columns})

    def _score_rows(self, batch):
        """A pandas batch in, the same rows out with prediction, scores and error added."""

        rows = batch.to_dict("records")
        records = [Record("<ray>", i + 1, _plain(row)) for i, row in enumerate(rows)]
        added: dict[str, list] = {name: [] for name in self.shape.fields}
        errors = []
        for outcome in self._results(records):
            fields = self.shape.named(outcome.output.fields()) if outcome.output else {}
            for name in self.shape.fields:
                added[name].append(fields.get(name))
            errors.append(error_struct(outcome.error) if outcome.error else None)
        batch = batch.copy()
        for name in self.shape.fields:
            batch[name] = added[name]
        batch[ERROR] = errors
        return batch


def error_struct(error: RowError) -> dict:
    """A RowError as the `error` column holds it: {message, field} (where it is: the row's
    own position, or `source` and `number` for JSON lines)."""
    return {"message": error.message, "field": error.field}


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


def check_versions(ray_version: str, pandas_version: str) -> None:
    """Refuse the one pairing known to lose rows without a word: Ray Data before 2.56 with
    pandas 3. The extra installs a good pair; this catches ones installed by hand (a cluster
    pinned to an older Ray works with pandas 2)."""
    from squeezenli.errors import InputError

    ray_at, pandas_at = _major_minor(ray_version), _major_minor(pandas_version)
    if ray_at is None or pandas_at is None:  # a build we cannot read: let it run
        return
    if pandas_at >= (3, 0) and ray_at < MIN_RAY_FOR_PANDAS_3:
        wanted = ".".join(map(str, MIN_RAY_FOR_PANDAS_3))
        raise InputError(
            f"Ray {ray_version} with pandas {pandas_version} loses rows (ray-project/ray#60402): "
            f"install ray>={wanted}, or pandas<3"
        )


def _major_minor(version: str) -> tuple[int, int] | None:
    import re

    found = re.match(r"(\d+)\.(\d+)", version)
    return (int(found[1]), int(found[2])) if found else None


def score_dataset(
    ds,
    spec: ModelSpec | None = None,
    options: PairOptions | None = None,
    *,
    rows_per_task: int = 1024,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    json_lines: bool = False,
    prefix: str = "",
    output_fields: dict[str, str] | str | None = None,
    **given: Any,
):
    """A Ray Dataset of pairs -> the same rows with `prediction`, `scores` (a struct, one
    field per class), `truncated` (and with long_input chunk, `evidence` {start, end} and
    `windows`; with a threshold, `entailed`; with logits, `logits`) and `error` (null for
    scored rows, else {message, field}; see split_errors). Every row comes out: none is
    dropped. The result's fields are named as in `batch` (`prefix`, `output_fields`
    renames); an input column they would overwrite is refused before anything runs. The
    options are PairOptions (or its fields among `given`); the model is `spec`, or a
    ModelSpec made from the rest of `given` (model="...", precision="int8", ...), handed to
    every actor whole. With json_lines, the Dataset holds numbered lines as read_pairs
    reads them, and the result holds `json` (the output line) and `error` (the problem; the
    file and line are `source` and `number`) beside `text`.

    Each actor runs cpus_per_actor onnxruntime threads (default: the cores of the smallest
    node, so one actor per node where nodes are alike), and as many actors start as the
    nodes hold (see actor_pool), unless `actors` says how many."""
    changes, model_fields = PairOptions.split(given)
    found = PairOptions.of(options, **changes)
    if not json_lines:
        # Chosen once, from the schema, so that every batch reads the same columns.
        premise, hypothesis = choose_pair_fields(
            list(ds.schema().names), found.premise_field, found.hypothesis_field, "the dataset"
        )
        found = replace(found, premise_field=premise, hypothesis_field=hypothesis)
    layout = _Layout(json_lines, rows_per_task, actors, cpus_per_actor)
    shape = result_fields(found, prefix, output_fields)
    return _on_actors(ds, spec or ModelSpec(**model_fields), found, shape, layout)


def classify_dataset(
    ds,
    labels: str | list[str] | None = None,
    spec: ModelSpec | None = None,
    options: ZeroShotOptions | None = None,
    *,
    rows_per_task: int = 256,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    json_lines: bool = False,
    prefix: str = "",
    output_fields: dict[str, str] | str | None = None,
    **given: Any,
):
    """A Ray Dataset of texts -> the same rows with what `squeezenli classify` adds
    (`labels`, `scores`, `truncated`, and `selected` with a threshold; `text` too when the
    text is another field; tasks/zeroshot.py) and `error`, as score_dataset does for pairs.
    Labels: a row's own `labels_field` list, else `labels`, else the labels of `hypotheses`
    (label -> its own hypothesis). Options: ZeroShotOptions, or its fields among `given`."""
    changes, model_fields = ZeroShotOptions.split(given)
    if labels is not None:
        changes["labels"] = labels
    found = ZeroShotOptions.of(options, **changes)  # usage errors before Ray runs
    layout = _Layout(json_lines, rows_per_task, actors, cpus_per_actor)
    shape = result_fields(found, prefix, output_fields)
    return _on_actors(ds, spec or ModelSpec(**model_fields), found, shape, layout)


def check_dataset(
    ds,
    spec: ModelSpec | None = None,
    options: CheckOptions | None = None,
    *,
    rows_per_task: int = 256,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    json_lines: bool = False,
    prefix: str = "",
    output_fields: dict[str, str] | str | None = None,
    **given: Any,
):
    """A Ray Dataset of sources and texts -> the same rows with what `squeezenli check`
    adds (`claims`, `score`, `supported_text`, `windows`; tasks/claims.py) and `error`, as
    score_dataset does for pairs. Options: CheckOptions, or its fields among `given`."""
    changes, model_fields = CheckOptions.split(given)
    found = CheckOptions.of(options, **changes)
    layout = _Layout(json_lines, rows_per_task, actors, cpus_per_actor)
    shape = result_fields(found, prefix, output_fields)
    return _on_actors(ds, spec or ModelSpec(**model_fields), found, shape, layout)


def task_dataset(ds, spec: ModelSpec, options: TaskOptions, **layout: Any):
    """The Dataset the task of `options` makes of ds: score_dataset, classify_dataset or
    check_dataset (`layout`: their cpus_per_actor, json_lines, prefix, output_fields)."""
    tasks: dict[str, Callable[..., Any]] = {
        PairOptions.task: score_dataset,
        ZeroShotOptions.task: classify_dataset,
        CheckOptions.task: check_dataset,
    }
    run = tasks[options.task]
    return run(ds, spec=spec, options=options, **layout)


@dataclass(frozen=True)
class _Layout:
    """How a Dataset is read and spread: JSON lines or typed rows, rows per task, actors."""

    json_lines: bool
    rows_per_task: int
    actors: int | None
    cpus_per_actor: int | None


def _on_actors(ds, spec: ModelSpec, options: TaskOptions, shape, layout: _Layout):
    """ds mapped by PairScorer actors, sized to the cluster (actor_pool); typed rows whose
    columns the result would overwrite are refused first."""
    import pandas
    import ray
    from ray.data import ActorPoolStrategy

    check_versions(ray.__version__, pandas.__version__)
    if not layout.json_lines:
        shape.refuse(ds.schema().names, "the dataset")
    pool, request, threads = actor_pool(_node_cpus(ray), layout.cpus_per_actor)
    arguments = {
        "spec": spec.with_threads(threads),
        "options": options,
        "lines": layout.json_lines,
        "shape": shape,
    }
    return ds.map_batches(
        PairScorer,
        fn_constructor_kwargs=arguments,
        batch_size=layout.rows_per_task,
        batch_format="pandas",
        compute=ActorPoolStrategy(size=layout.actors or pool),
        num_cpus=request,
    )


def actor_pool(node_cpus: list[float], cpus_per_actor: int | None) -> tuple[int, float, int]:
    """(actors, CPUs each asks Ray for, threads each runs) for nodes with these CPU counts.

    Threads default to the smallest node's cores: on 2 cores one actor with 2 threads
    scored 4000 pairs in 29.6 s, two actors with 1 thread each in 40.5 s. Each node holds
    as many actors as its cores less one fit threads (at least one). The CPUs an actor asks
    for leave one CPU per node to Ray Data's own tasks (listing, reading, filtering,
    writing: a CPU each): with every CPU held by actors they never run and the job waits
    for ever. An actor still runs all its threads."""
    nodes = [cpus for cpus in node_cpus if cpus > 0] or [1.0]
    threads = cpus_per_actor or max(1, int(min(nodes)))
    request = max(0.25, min(float(threads), min(nodes) - 1))
    return sum(max(1, int((cpus - 1) // threads)) for cpus in nodes), request, threads


def _node_cpus(ray) -> list[float]:
    return [node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["Alive"]]


def split_errors(
    scored,
    json_lines: bool = False,
    *,
    prefix: str = "",
    output_fields: dict[str, str] | str | None = None,
):
    """(scored rows, rows that could not be scored) of score_dataset's (classify_dataset's,
    check_dataset's) result: the scored rows without `error`, the failed ones without the
    result's columns (named by the same `prefix` and `output_fields`; with json_lines: the
    output lines alone, and `error`, `source`, `number`, `text`)."""
    from ray.data.expressions import col

    from squeezenli.tasks.rows import every_result_name, parse_renames

    good = scored.filter(expr=col(ERROR).is_null())
    bad = scored.filter(expr=col(ERROR).is_not_null())
    if json_lines:
        return good.select_columns(["json"]), bad.select_columns([ERROR, *LINE_COLUMNS])
    renames = parse_renames(output_fields) if isinstance(output_fields, str) else output_fields
    named = {prefix + (renames or {}).get(name, name) for name in every_result_name()}
    added = [name for name in scored.columns() if name in named]
    return good.drop_columns([ERROR]), bad.drop_columns(added)


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
        # Lines split as the local reader splits them (on b"\n" only, bytes undecoded, so a
        # bad line is one row's error) and numbered, so errors say file and line. Like
        # ray.data.read_text, this holds one whole file in memory at a time.
        files = ray.data.read_binary_files(paths, include_paths=True, num_cpus=0)
        return files.flat_map(_numbered_lines, num_cpus=0), True
    if kind == "parquet":
        return ray.data.read_parquet(paths, num_cpus=0), False
    if kind in ("csv", "tsv"):
        from pyarrow import csv

        options = {"parse_options": csv.ParseOptions(delimiter="," if kind == "csv" else "\t")}
        return ray.data.read_csv(paths, num_cpus=0, **options), False
    raise ValueError(f"unknown format {kind!r}")


def _numbered_lines(file: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A file's non-blank lines as rows: `source` (its path), `number` (from 1), `text`."""
    import io

    for number, raw in enumerate(io.BytesIO(file["bytes"]), start=1):
        if raw.strip():
            yield {"source": file["path"], "number": number, "text": raw}


def _kind_of(path: str) -> str:
    from squeezenli.records.readers import detect_format

    if path.rstrip("/").lower().endswith(".parquet"):
        return "parquet"
    return detect_format(path, None)
