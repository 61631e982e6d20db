"""`batch --engine ray` and the Ray Data API: the same rows and scores as the local path,
every bad row accounted for. Runs when Ray is installed (pip install -e '.[test,ray]')."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from squeezenli.cli import app

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _lines() -> list[str]:
    rows = [
        {"id": i, "premise": f"A man plays a guitar {i} times.", "hypothesis": "Music." * (i % 3)}
        for i in range(40)
    ]
    lines = [json.dumps(r) for r in rows]
    lines[5] = '{"id": 5, "premise": null, "hypothesis": "x"}'
    lines[9] = "not json"
    lines[12] = ""
    return lines


def _batch(*args: str):
    return runner.invoke(app, ["batch", *args, "--precision", "fp32", "--on-error", "skip"])


def test_jsonl_on_ray_equals_the_local_path(tiny_nli_model, tmp_path):
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(_lines()) + "\n")
    local = _batch(str(source), "-m", str(tiny_nli_model))
    on_ray = _batch(str(source), "-m", str(tiny_nli_model), "--engine", "ray")
    assert local.exit_code == on_ray.exit_code == 1, on_ray.output
    assert on_ray.stdout == local.stdout
    assert len(on_ray.stdout.splitlines()) == 37  # 40 lines, one blank, two bad
    assert on_ray.stderr.count("squeezenli: skipped ") == 2
    assert "field 'premise' must be text, got null" in on_ray.stderr
    assert "37 rows scored, 2 failed" in on_ray.stderr


def test_a_glob_reads_its_files_in_order(tiny_nli_model, tmp_path):
    lines = _lines()
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:20]) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[20:]) + "\n")
    local = _batch(str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "-m", str(tiny_nli_model))
    on_ray = _batch(str(tmp_path / "*.jsonl"), "-m", str(tiny_nli_model), "--engine", "ray")
    assert on_ray.stdout == local.stdout and len(on_ray.stdout.splitlines()) == 37
    missing = _batch(str(tmp_path / "*.csv"), "-m", str(tiny_nli_model), "--engine", "ray")
    assert missing.exit_code == 2 and "no files match" in missing.stderr


def test_csv_on_ray_equals_the_local_path(tiny_nli_model, tmp_path):
    source = tmp_path / "pairs.csv"
    rows = ["id,premise,hypothesis"] + [
        f"{i},A dog runs {i} times.,An animal moves." for i in range(30)
    ]
    source.write_text("\n".join(rows) + "\n")
    args = [str(source), "-m", str(tiny_nli_model), "-o", "csv"]
    local = _batch(*args)
    on_ray = _batch(*args, "--engine", "ray")
    assert local.exit_code == on_ray.exit_code == 0, on_ray.output
    assert on_ray.stdout == local.stdout


def test_parquet_in_parquet_out(tiny_nli_model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pairs = [(f"A woman reads book {i}.", "She reads.") for i in range(25)]
    table = pa.table({"premise": [p for p, _ in pairs], "hypothesis": [h for _, h in pairs]})
    pq.write_table(table, tmp_path / "pairs.parquet")
    out = tmp_path / "scored"
    done = _batch(
        str(tmp_path / "pairs.parquet"),
        "-m",
        str(tiny_nli_model),
        "--engine",
        "ray",
        "--output-path",
        str(out),
        "-o",
        "parquet",
    )
    assert done.exit_code == 0, done.output
    written = pq.read_table(out).to_pylist()
    from squeezenli.model import load_model

    expected = list(load_model(str(tiny_nli_model), precision="fp32").predict(pairs))
    by_premise = {row["premise"]: row for row in written}
    assert len(by_premise) == len(pairs)
    for (premise, _), prediction in zip(pairs, expected):
        row = by_premise[premise]
        assert row["prediction"] == prediction.label
        for name, value in prediction.scores.items():
            assert abs(row["scores"][name] - value) < 1e-6


def test_the_python_api_keeps_every_row(tiny_nli_model):
    from squeezenli.ray_engine import score_dataset, split_errors

    items = [{"premise": "A man plays.", "hypothesis": "Music."}] * 10
    items += [{"premise": "x", "hypothesis": None}]
    scored = score_dataset(ray.data.from_items(items), model=str(tiny_nli_model))
    good, bad = split_errors(scored.materialize())
    assert good.count() == 10 and bad.count() == 1
    [error] = bad.take_all()
    assert "field 'hypothesis' must be text" in error["error"]


def test_stdin_is_refused_with_a_clear_error(tiny_nli_model):
    done = runner.invoke(app, ["batch", "-m", str(tiny_nli_model), "--engine", "ray"], input="")
    assert done.exit_code == 2
    assert "--engine ray reads files" in done.stderr
