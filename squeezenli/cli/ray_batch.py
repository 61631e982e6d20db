"""`--engine ray` (batch, classify): the same inputs, fields and scores, computed by Ray actors."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from squeezenli.choices import OnError, Output
from squeezenli.cli.options import Backend, Delivery, ModelOptions
from squeezenli.cli.streams import ErrorLog, summary
from squeezenli.errors import InputError, SqueezenliError
from squeezenli.models.labels import LabelMap
from squeezenli.records.readers import Record, RowError, RowFailure
from squeezenli.runtime.prediction import Prediction
from squeezenli.tasks.options import TaskOptions
from squeezenli.tasks.results import PairFields
from squeezenli.tasks.rows import ResultFields


@dataclass(frozen=True)
class RayJob:
    """What a command runs on Ray: its task's options (ray_engine.task_dataset maps the input
    Dataset to scored rows), the result fields as `shape` names them; `make_sink(labels)`
    writes each good row to stdout (`write(row, record)`, `close()`); `what` names the rows
    in the summary."""

    options: TaskOptions
    shape: ResultFields
    make_sink: Callable
    what: str = "scored"


def run_on_ray(
    files: list[str],
    fmt: str | None,
    job: RayJob,
    backend: Backend,
    delivery: Delivery,
    opts: ModelOptions,
    output: Output = Output.JSONL,
    output_path: Path | None = None,
) -> int:
    """Run `job` on Ray (at backend.address); rows go to stdout in input order
    (job.make_sink), or to files under output_path. Returns the number of rows that
    failed."""
    if not files or "-" in files:
        raise InputError("--engine ray reads files, directories, globs or URLs, not stdin")
    files = _expand(files)
    started = time.perf_counter()
    ray = _start(backend.address, opts.quiet)
    on_error = delivery.on_error
    from squeezenli.ray_engine import ERROR, read_pairs, split_errors, task_dataset

    try:
        ds, lines = read_pairs(files, fmt)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {', '.join(files)}: {err}") from None
    # Fetch and build once here, before the actors start (each node does the same once).
    labels = opts.prepare().labels
    sink = None if output_path is not None else job.make_sink(labels)
    error_log = ErrorLog(delivery.errors)
    done = failed = 0
    try:
        scored = task_dataset(
            ds,
            opts.spec,
            job.options,
            cpus_per_actor=opts.spec.threads,
            json_lines=lines,
            prefix=delivery.prefix,
            output_fields=delivery.output_fields,
        )
        if output_path is not None:
            scored = scored.materialize()
            good, bad = split_errors(scored, lines, output_fields=job.shape.names)
            _write(good, output, output_path, lines)
            done, failed = good.count(), bad.count()
            for row in bad.iter_rows():
                _fail(error_log, row, on_error, lines, job.shape)
        else:
            assert sink is not None
            for batch in scored.iter_batches(batch_format="pandas"):
                for row in batch.to_dict("records"):
                    if row[ERROR] is not None:
                        failed += 1
                        _fail(error_log, row, on_error, lines, job.shape)
                        continue
                    data = orjson.loads(row["json"]) if lines else _row_data(row, ())
                    where = Record(row["source"], int(row["number"]), data) if lines else None
                    try:
                        sink.write(data, where or Record("<ray>", 0, data))
                    except RowFailure as problem:  # a row the output cannot take
                        failed += 1
                        if on_error is OnError.FAIL:
                            raise
                        error_log.write(where or Record("<ray>", 0, data), problem.error)
                        continue
                    done += 1
    except ray.exceptions.RayError as err:
        raise _failure(err) from err
    finally:
        if sink is not None:
            sink.close()
        error_log.close()
        elapsed = time.perf_counter() - started
        summary(job.what, done, failed, elapsed, opts.quiet, error=sys.exc_info()[1])
    return failed


class PredictionRows:
    """batch's sink fed rows Ray scored: each row's result fields (named by `shape`) taken
    back into a Prediction and written as the local path writes it (CSV cells, a table,
    which shows the pair `fields` reads from the row)."""

    def __init__(self, sink, shape: ResultFields, labels: LabelMap, fields: PairFields) -> None:
        self.sink = sink
        self.shape = shape
        self.labels = labels
        self.fields = fields

    def write(self, row: dict, record: Record) -> None:
        result = {own: row.pop(name) for own, name in self.shape.names.items() if name in row}
        # Scores back in label order: older pyarrow sorts a struct's fields by name.
        result["scores"] = {
            self.labels.names[i]: result["scores"][self.labels.names[i]]
            for i in self.labels.ordered()
        }
        data = Record(record.source, record.line, row)
        self.sink.write(self.fields.read(data), Prediction.from_fields(result), data)

    def close(self) -> None:
        self.sink.close()


def _start(address: str | None, quiet: bool):
    """Ray, started locally or joined at `address`; Ray Data keeps input order, and its
    progress (and its log lines) show unless --quiet."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'squeezenli[ray]'") from None
    import pandas

    from squeezenli.ray_engine import check_versions

    check_versions(ray.__version__, pandas.__version__)  # before a cluster is started or joined
    if address:
        _check_reachable(address)
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        ignore_reinit_error=True,
    )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = not quiet
    # Ray Data logs a failure's whole traceback on stderr; ours is one line (the traceback
    # stays in Ray's session logs, and --debug shows it). --quiet leaves nothing of it.
    data_log = logging.getLogger("ray.data")
    data_log.setLevel(logging.ERROR if quiet else logging.INFO)
    for handler in data_log.handlers:
        if isinstance(handler, logging.StreamHandler) and _below_error not in handler.filters:
            handler.addFilter(_below_error)
    return ray


def _below_error(record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


def _check_reachable(address: str) -> None:
    """Fail at once on a cluster address nothing answers at: ray.init would retry for
    minutes. "auto", "local" and addresses without a port are left to Ray."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise SqueezenliError(f"no Ray cluster answers at --address {address}: {err}") from None


def _failure(err: BaseException) -> SqueezenliError:
    """Ray's error as one line: our own error from inside a task as it was raised there,
    anything else as the first line of its innermost cause (--debug shows the rest)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, SqueezenliError):
            return seen
        inner = getattr(seen, "cause", None) or seen.__cause__
        if inner is None:
            break
        seen = inner
    lines = [line.strip() for line in str(seen).splitlines() if line.strip()]
    return SqueezenliError(f"Ray failed: {lines[0] if lines else type(seen).__name__}")


def _expand(paths: list[str]) -> list[str]:
    """Local globs expanded here, in order, and local paths checked (URLs go to Ray as
    they are)."""
    import glob

    expanded: list[str] = []
    for path in paths:
        if "://" in path:
            expanded.append(path)
        elif glob.has_magic(path):
            matches = sorted(glob.glob(path))
            if not matches:
                raise InputError(f"no files match {path}")
            expanded.extend(matches)
        elif not Path(path).exists():
            raise InputError(f"{path}: no such file or directory")
        else:
            expanded.append(path)
    return expanded


def _row_data(row: dict, added) -> dict:
    """A typed row as Ray gives it back, without `error` and the `added` columns."""
    from squeezenli.ray_engine import ERROR, _plain

    dropped = {ERROR, *added}
    return _plain({k: v for k, v in row.items() if k not in dropped})


def _fail(
    error_log: ErrorLog, row: dict, on_error: OnError, lines: bool, shape: ResultFields
) -> None:
    """A row Ray could not score: stop (--on-error fail) or log it, as the local path does.
    JSON lines carry their file and line; typed rows (CSV, Parquet) have no line number."""
    from squeezenli.ray_engine import ERROR
    from squeezenli.records.readers import parse_jsonl_line

    problem = row[ERROR]
    if lines:
        parsed = parse_jsonl_line(row["text"], row["source"], int(row["number"]))
        record = parsed or Record(row["source"], int(row["number"]), None)
    else:
        record = Record("<ray>", 0, _row_data(row, shape.fields))
    error = RowError.of(record, problem["message"], problem["field"])
    if on_error is OnError.FAIL:
        raise RowFailure(error)
    error_log.write(record, error)


def _write(ds, output: str, path: Path, lines: bool) -> None:
    if lines:  # the output documents, as columns
        ds = ds.map(lambda row: orjson.loads(row["json"]))
    writers = {"parquet": ds.write_parquet, "jsonl": ds.write_json, "csv": ds.write_csv}
    if output not in writers:
        raise InputError(f"--output-path writes parquet, jsonl or csv, not {output}")
    writers[output](str(path))
