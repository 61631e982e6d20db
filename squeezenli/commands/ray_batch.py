"""`squeezenli batch --engine ray`: the same inputs, fields and scores, computed by Ray actors."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from ..errors import InputError, SqueezenliError
from ..io import Record
from ..model import Prediction
from .options import ModelOptions
from .streams import ErrorLog, summary


def run_on_ray(
    files: list[str],
    fmt: str | None,
    *,
    address: str | None,
    output: str,
    output_path: Path | None,
    premise_field: str | None,
    hypothesis_field: str | None,
    on_error: str,
    errors: Path | None,
    opts: ModelOptions,
    make_sink,
) -> int:
    """Score on Ray; rows go to stdout in input order (a sink from make_sink(labels)), or to
    files under output_path. Returns the number of rows that failed."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'squeezenli[ray]'") from None
    from ..ray_engine import ERROR, read_pairs, score_dataset, split_errors

    if not files or "-" in files:
        raise InputError("--engine ray reads files, directories, globs or URLs, not stdin")
    files = _expand(files)
    started = time.perf_counter()
    ray.init(
        address=address,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        ignore_reinit_error=True,
    )
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ray.data.DataContext.get_current().enable_progress_bars = not opts.quiet
    try:
        ds, lines = read_pairs(files, fmt)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {', '.join(files)}: {err}") from None
    # Fetch and build once here, before the actors start (each node does the same once).
    labels = opts.load().labels
    sink = None if output_path is not None else make_sink(labels)
    scored = score_dataset(
        ds,
        model=opts.model,
        revision=opts.revision,
        precision=opts.precision,
        label_order=opts.label_order,
        max_length=opts.max_length,
        premise_field=premise_field,
        hypothesis_field=hypothesis_field,
        batch_size=opts.batch_size,
        batch_tokens=opts.batch_tokens,
        cpus_per_actor=opts.threads or 1,
        json_lines=lines,
    )
    error_log = ErrorLog(errors)
    done = failed = 0
    try:
        if output_path is not None:
            scored = scored.materialize()
            good, bad = split_errors(scored)
            _write(good, output, output_path, lines)
            done, failed = good.count(), bad.count()
            for row in bad.iter_rows():
                _fail(error_log, row, on_error)
        else:
            for batch in scored.iter_batches(batch_format="pandas"):
                for row in batch.to_dict("records"):
                    if row[ERROR] is not None:
                        failed += 1
                        _fail(error_log, row, on_error)
                        continue
                    done += 1
                    data = orjson.loads(row["json"]) if lines else _row_data(row)
                    prediction = Prediction(data.pop("prediction"), data.pop("scores"))
                    sink.write(data, None, prediction)
    except ray.exceptions.RayTaskError as err:
        cause = err.cause if isinstance(getattr(err, "cause", None), SqueezenliError) else None
        if cause is not None:
            raise cause from None
        raise
    finally:
        if sink is not None:
            sink.close()
        error_log.close()
        summary("scored", done, failed, time.perf_counter() - started, opts.quiet)
    return failed


def _expand(paths: list[str]) -> list[str]:
    """Local globs expanded here, in order (URLs and plain paths go to Ray as they are)."""
    import glob

    expanded: list[str] = []
    for path in paths:
        if "://" in path or not glob.has_magic(path):
            expanded.append(path)
            continue
        matches = sorted(glob.glob(path))
        if not matches:
            raise InputError(f"no files match {path}")
        expanded.extend(matches)
    return expanded


def _row_data(row: dict) -> dict:
    from ..ray_engine import ERROR, _plain

    return _plain({k: v for k, v in row.items() if k != ERROR})


def _fail(error_log: ErrorLog, row: dict, on_error: str) -> None:
    from ..ray_engine import ERROR

    message = row[ERROR]
    if on_error == "fail":
        raise InputError(f"a row could not be scored: {message}")
    data = row.get("line") if "line" in row else {k: v for k, v in row.items() if k != ERROR}
    error_log.write(Record("<ray>", 0, data if isinstance(data, dict) else None), message)


def _write(ds, output: str, path: Path, lines: bool) -> None:
    if lines:  # the output documents, as columns
        ds = ds.map(lambda row: orjson.loads(row["json"]))
    writers = {"parquet": ds.write_parquet, "jsonl": ds.write_json, "csv": ds.write_csv}
    if output not in writers:
        raise InputError(f"--output-path writes parquet, jsonl or csv, not {output}")
    writers[output](str(path))
