"""`batch --engine ray` and the Ray Data API: the same rows and scores as the local path,
every bad row accounted for. Runs when Ray is installed (pip install -e '.[test,ray]')."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from squeezenli.cli.app import app
from squeezenli.errors import InputError

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")
# Imported here, not first inside a CliRunner call: Ray Data's log handler keeps the stderr
# it finds at import, and CliRunner's is closed when the call ends.
pytest.importorskip("ray.data")

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _lines() -> list[str]:
    rows = [
        {
            "id": i,
            "premise": f"A man plays a guitar {i} times.",
            "hypothesis": "Music." * (1 + i % 3),
        }
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
    assert _skipped(on_ray.stderr) == _skipped(local.stderr)
    assert f"skipped {source}:6: field 'premise' must be text, got null" in on_ray.stderr
    assert "37 rows scored, 2 failed" in on_ray.stderr


def _skipped(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("squeezenli: skipped ")]


def test_json_lines_are_cut_and_read_as_the_local_path_reads_them(tiny_nli_model, tmp_path):
    """Lines end at b"\n" only (U+2028 inside a string is text), bytes are not decoded
    before parsing (bad UTF-8 is one row's error), a BOM and CRLF are accepted."""
    source = tmp_path / "odd.jsonl"
    source.write_bytes(
        b'\xef\xbb\xbf{"premise": "A man plays.", "hypothesis": "Music."}\r\n'
        + '{"premise": "A man\u2028plays.", "hypothesis": "Music\u0085."}\n'.encode()
        + b'{"premise": "caf\xff", "hypothesis": "x"}\n'
        + b"[1, 2]\n"
        + b'{"premise": "ok", "hypothesis": "fine"}'
    )
    local_errors, ray_errors = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    local = _batch(str(source), "-m", str(tiny_nli_model), "--errors", str(local_errors))
    on_ray = _batch(
        str(source), "-m", str(tiny_nli_model), "--engine", "ray", "--errors", str(ray_errors)
    )
    assert local.exit_code == on_ray.exit_code == 1, on_ray.output
    assert on_ray.stdout == local.stdout and local.stdout.count("\n") == 3
    assert ray_errors.read_text() == local_errors.read_text()
    assert [json.loads(line)["line"] for line in ray_errors.read_text().splitlines()] == [3, 4]


def test_a_failure_inside_ray_is_one_line(tiny_nli_model, tmp_path):
    source = tmp_path / "ragged.csv"
    source.write_text("premise,hypothesis\na,b\nc,d,e\n")
    done = _batch(str(source), "-m", str(tiny_nli_model), "--engine", "ray")
    assert done.exit_code == 1
    assert "squeezenli: error: Ray failed: Failed to read CSV file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_file_or_cluster_is_named(tiny_nli_model, tmp_path):
    missing = _batch(str(tmp_path / "nothere.jsonl"), "--engine", "ray")
    assert missing.exit_code == 2 and "nothere.jsonl: no such file" in missing.stderr
    source = tmp_path / "pairs.jsonl"
    source.write_text(_lines()[0] + "\n")
    nobody = _batch(str(source), "--engine", "ray", "--address", "127.0.0.1:9")
    assert nobody.exit_code == 1 and "no Ray cluster answers at --address" in nobody.stderr


def test_a_ray_too_old_for_pandas_3_is_refused(tiny_nli_model, tmp_path, monkeypatch):
    import pandas

    source = tmp_path / "pairs.jsonl"
    source.write_text(_lines()[0] + "\n")
    monkeypatch.setattr(ray, "__version__", "2.55.1")
    monkeypatch.setattr(pandas, "__version__", "3.0.0")
    old = _batch(str(source), "-m", str(tiny_nli_model), "--engine", "ray")
    assert old.exit_code == 2 and "Ray 2.55.1 with pandas 3.0.0 loses rows" in old.stderr
    assert old.stdout == ""
    from squeezenli.ray_engine import score_dataset

    with pytest.raises(InputError, match="ray>=2.56, or pandas<3"):
        score_dataset(ray.data.from_items([{"premise": "a", "hypothesis": "b"}]))


@pytest.mark.parametrize(
    "ray_version, pandas_version",
    [("2.51.0", "2.3.3"), ("2.56.0", "3.1.1"), ("3.0.0.dev0", "3.0.0rc1"), ("nightly", "3.1.1")],
)
def test_working_version_pairs_pass(ray_version, pandas_version):
    from squeezenli.ray_engine import check_versions

    check_versions(ray_version, pandas_version)


@pytest.mark.parametrize(
    "nodes, threads, expected",
    [
        ([2.0], None, (1, 1.0, 2)),  # this machine: one actor, both cores
        ([2.0], 1, (1, 1.0, 1)),
        ([16.0, 16.0, 0.0], None, (2, 15.0, 16)),  # a head without CPUs gets no actor
        ([16.0, 16.0], 4, (6, 4.0, 4)),
        ([8.0, 2.0], None, (4, 1.0, 2)),  # the small node sets the threads
        ([1.0], None, (1, 0.25, 1)),
    ],
)
def test_actors_are_sized_to_the_nodes(nodes, threads, expected):
    from squeezenli.ray_engine import actor_pool

    assert actor_pool(nodes, threads) == expected


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
        "RAY",  # any case; --format's choices depend on it (this failed before)
        "--format",
        "parquet",
        "--output-path",
        str(out),
        "-o",
        "parquet",
    )
    assert done.exit_code == 0, done.output
    written = pq.read_table(out).to_pylist()
    from squeezenli.runtime.model import load_model

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
    assert error["error"]["message"] == "field 'hypothesis' must be text, got null"
    assert error["error"]["field"] == "hypothesis"


def test_stdin_is_refused_with_a_clear_error(tiny_nli_model):
    done = runner.invoke(app, ["batch", "-m", str(tiny_nli_model), "--engine", "ray"], input="")
    assert done.exit_code == 2
    assert "--engine ray reads files" in done.stderr


def test_json_lines_to_an_output_path_keep_their_errors(tiny_nli_model, tmp_path):
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(_lines()) + "\n")
    local_errors, ray_errors = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    local = _batch(str(source), "-m", str(tiny_nli_model), "--errors", str(local_errors))
    out = tmp_path / "scored"
    on_ray = _batch(
        *(str(source), "-m", str(tiny_nli_model), "--engine", "ray", "--errors", str(ray_errors)),
        *("--output-path", str(out), "-o", "jsonl"),
    )
    assert on_ray.exit_code == 1, on_ray.output
    assert ray_errors.read_text() == local_errors.read_text()
    written = [json.loads(line) for path in sorted(out.iterdir()) for line in path.open()]
    expected = [json.loads(line) for line in local.stdout.splitlines()]
    assert sorted(written, key=lambda row: row["id"]) == expected


@pytest.mark.parametrize("output", ["jsonl", "csv"])
def test_chunked_premises_on_ray_equal_the_local_path(tiny_nli_model, tmp_path, output):
    sentences = ["The man plays a guitar.", "The dog runs in the park.", "Some people eat food."]
    rows = [
        {"id": i, "premise": " ".join(sentences * (1 + i % 4)), "hypothesis": "A man plays."}
        for i in range(12)
    ]
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [str(source), "-m", str(tiny_nli_model), "--long-input", "chunk", "-o", output]
    local = _batch(*args)
    on_ray = _batch(*args, "--engine", "ray")
    assert local.exit_code == on_ray.exit_code == 0, on_ray.output
    assert on_ray.stdout == local.stdout
    if output == "jsonl":
        windows = [json.loads(line)["windows"] for line in local.stdout.splitlines()]
        assert max(windows) > 1


def test_check_on_ray_equals_the_local_path(tiny_nli_model):
    from squeezenli.ray_engine import check_dataset, split_errors
    from squeezenli.records.readers import Record
    from squeezenli.runtime.model import load_model
    from squeezenli.tasks.claims import check_records

    sentences = ["The man plays a guitar.", "The dog runs in the park.", "Some people eat food."]
    rows = [
        {"id": i, "source": " ".join(sentences * (1 + i % 3)), "text": "A man plays. Dogs run."}
        for i in range(8)
    ]
    rows[3]["text"] = "   "  # no sentence to check: that row's error
    scored = check_dataset(ray.data.from_items(rows), model=str(tiny_nli_model), precision="fp32")
    good, bad = split_errors(scored)
    nli = load_model(str(tiny_nli_model), precision="fp32")
    records = [Record("<ray>", i + 1, row) for i, row in enumerate(rows)]
    local = list(check_records(nli, records, on_error="skip"))
    expected = [r.output.fields() for r in local if r.output is not None]
    got = sorted(good.take_all(), key=lambda row: row["id"])
    assert [{k: row[k] for k in expected[0]} for row in got] == expected
    assert [row["id"] for row in bad.take_all()] == [3]


def test_check_with_passages_and_given_claims_on_ray_equals_the_local_path(tiny_nli_model):
    from squeezenli.ray_engine import check_dataset, split_errors
    from squeezenli.records.readers import Record
    from squeezenli.runtime.model import load_model
    from squeezenli.tasks.claims import check_records

    passages = [{"id": "a", "text": "The man plays a guitar."}, {"id": "b", "text": "It rains."}]
    rows = [
        {
            "id": i,
            "source": passages[: 1 + i % 2],
            "subclaims": ["A man plays.", "Dry."][: 1 + i % 2],
        }
        for i in range(6)
    ]
    options = {"claims_field": "subclaims", "precision": "fp32"}
    scored = check_dataset(ray.data.from_items(rows), model=str(tiny_nli_model), **options)
    good, bad = split_errors(scored)
    nli = load_model(str(tiny_nli_model), precision="fp32")
    records = [Record("<ray>", i + 1, row) for i, row in enumerate(rows)]
    local = list(check_records(nli, records, claims_field="subclaims"))
    expected = [r.output.fields() for r in local]
    got = sorted(good.take_all(), key=lambda row: row["id"])
    assert [{k: row[k] for k in expected[0]} for row in got] == expected
    assert not bad.take_all()


@pytest.mark.parametrize("source_format", ["jsonl", "csv"])
def test_thresholds_and_logits_on_ray_equal_the_local_path(tiny_nli_model, tmp_path, source_format):
    rows = [
        {"id": i, "premise": f"A man plays a guitar {i} times.", "hypothesis": "Music."}
        for i in range(20)
    ]
    source = tmp_path / f"pairs.{source_format}"
    if source_format == "jsonl":
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        source.write_text(
            "id,premise,hypothesis\n"
            + "".join(f"{r['id']},{r['premise']},{r['hypothesis']}\n" for r in rows)
        )
    args = [str(source), "-m", str(tiny_nli_model), "--threshold", "0.35", "--logits"]
    args += ["-o", source_format]  # typed CSV rows come back typed: compared as CSV
    local = _batch(*args)
    on_ray = _batch(*args, "--engine", "ray")
    assert local.exit_code == on_ray.exit_code == 0, on_ray.output
    assert on_ray.stdout == local.stdout
    assert "entailed" in local.stdout and "logit" in local.stdout


@pytest.mark.parametrize("source_format", ["jsonl", "csv"])
def test_classify_on_ray_equals_the_local_path(tiny_nli_model, tmp_path, source_format):
    texts = [f"The match went to extra time {i} times." for i in range(12)]
    source = tmp_path / f"texts.{source_format}"
    if source_format == "jsonl":
        rows = [{"id": i, "text": t} for i, t in enumerate(texts)]
        rows[4]["candidate_labels"] = ["art", "sports"]  # a row's own labels
        rows[7]["candidate_labels"] = "art"  # not a list: that row's error
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        source.write_text("id,text\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts)))
    args = ["classify", "-i", str(source), "-l", "sports,politics,music", "-m", str(tiny_nli_model)]
    args += ["--precision", "fp32", "--on-error", "skip", "--threshold", "0.34", "--prefix", "z_"]
    local = runner.invoke(app, args)
    on_ray = runner.invoke(app, [*args, "--engine", "ray"])
    assert local.exit_code == on_ray.exit_code == (1 if source_format == "jsonl" else 0)
    ours, theirs = local.stdout.splitlines(), on_ray.stdout.splitlines()
    if source_format == "csv":  # typed rows come back typed: the id is a number there
        ours = [
            json.dumps({**json.loads(line), "id": int(json.loads(line)["id"])}) for line in ours
        ]
        theirs = [json.dumps(json.loads(line)) for line in theirs]
    assert theirs == ours and len(ours) == (11 if source_format == "jsonl" else 12)
    assert "z_selected" in ours[0]
    if source_format == "jsonl":
        assert "texts.jsonl:8" in on_ray.stderr and "must be a list" in on_ray.stderr


def test_a_table_from_ray_equals_the_local_table(tiny_nli_model, tmp_path):
    """The table shows each row's pair, read back from the rows Ray scored (it had none)."""
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(_lines()) + "\n")
    args = [str(source), "-m", str(tiny_nli_model), "-o", "table"]
    local = _batch(*args)
    on_ray = _batch(*args, "--engine", "ray")
    assert local.exit_code == on_ray.exit_code == 1, on_ray.output
    assert on_ray.stdout == local.stdout
    assert on_ray.stdout.count("┃ premise") == 2  # 37 rows: a part of 32, then 5
    assert "guitar" in on_ray.stdout
