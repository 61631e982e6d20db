"""The Python API: every public name imports lazily and works as docs/python-api.md shows."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tinymodel import write_tiny_model

import squeezenli


def test_every_public_name_resolves():
    for name in squeezenli.__all__:
        assert getattr(squeezenli, name) is not None, name


def test_importing_the_package_loads_nothing_heavy():
    code = (
        "import sys, squeezenli.cli; "
        "print(sorted(m for m in ('onnxruntime', 'huggingface_hub', 'numpy', 'onnx', 'rich.table') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_classify_and_evaluate_from_the_package_root(tiny_nli_model, tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        '{"premise": "A man plays.", "hypothesis": "A man plays.", "label": "entailment"}\n'
    )
    nli = squeezenli.load_model(str(tiny_nli_model))
    [result] = squeezenli.classify(nli, ["The match went to extra time."], ["sports", "politics"])
    assert sorted(result.labels) == ["politics", "sports"]
    assert abs(sum(result.scores) - 1) < 1e-6
    with open(gold, "rb") as f:
        report = squeezenli.evaluate(nli, squeezenli.read_records(f, str(gold), "jsonl"))
    assert report.as_dict()["counts"]["scored"] == 1


def test_prepare_model_builds_and_checks_without_opening_a_session(tmp_path, monkeypatch):
    """What the Ray driver runs before its actors start: everything but the session."""
    from squeezenli.errors import InputError
    from squeezenli.models.build import built_path, ready_path
    from squeezenli.models.hub import resolve
    from squeezenli.runtime import model

    folder = write_tiny_model(tmp_path / "fresh", seed=7)  # weights no other test has built
    opened = []
    monkeypatch.setattr(model, "create_session", lambda *args: opened.append(args))
    prepared = squeezenli.prepare_model(str(folder), precision="int8", label_order="a,b,c")
    assert prepared.labels.names == ("a", "b", "c") and opened == []
    files = resolve(str(folder))
    assert ready_path(built_path(files, "int8"), files.build_dir).is_file()
    with pytest.raises(InputError, match="exceeds the model's"):
        squeezenli.prepare_model(str(folder), max_length=10_000)


def test_a_model_spec_goes_whole_to_load_model(tiny_nli_model):
    from squeezenli import ModelSpec

    spec = ModelSpec(str(tiny_nli_model), precision="fp32", batch_size=3, max_length=32)
    whole = squeezenli.load_model(spec)
    spread = squeezenli.load_model(
        str(tiny_nli_model), precision="fp32", batch_size=3, max_length=32
    )
    pairs = [("A man plays a guitar.", "A person makes music.")] * 4
    assert whole.engine.batch_size == 3 and whole.max_length == 32
    assert (whole.logits(pairs) == spread.logits(pairs)).all()
    with pytest.raises(squeezenli.SqueezenliError, match="not both"):
        squeezenli.load_model(spec, precision="int8")


def test_library_errors_name_parameters_and_the_cli_names_flags(tiny_nli_model):
    from typer.testing import CliRunner

    from squeezenli.cli.app import app

    with pytest.raises(squeezenli.SqueezenliError, match="`max_length` must be at least 8"):
        squeezenli.load_model(str(tiny_nli_model), precision="fp32", max_length=5)
    result = CliRunner().invoke(
        app, ["A.", "B.", "-m", str(tiny_nli_model), "--precision", "fp32", "--max-length", "5"]
    )
    assert result.exit_code == 2
    assert "--max-length must be at least 8" in result.stderr


def test_every_public_name_is_listed_and_importable():
    assert set(squeezenli.__all__) == {*squeezenli._EXPORTS, "__version__"}
    for name in squeezenli.__all__:
        assert getattr(squeezenli, name) is not None


def test_dir_lists_the_public_names():
    assert set(squeezenli.__all__) <= set(dir(squeezenli))
    assert "InputError" in squeezenli.__all__ and squeezenli.InputError.exit_code == 2


def test_the_python_api_pages_blocks_run_as_written(tiny_nli_model, tmp_path, monkeypatch, capsys):
    """Every Python block of docs/python-api.md, on the tiny model in place of the default
    one (the Ray, Spark and documents blocks have tests of their own)."""
    from manual import page

    blocks = [b.split("```")[0] for b in page("python-api.md").split("```python\n")[1:]]
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gold.jsonl").write_text(
        '{"premise": "A man plays.", "hypothesis": "A man plays.", "label": "entailment"}\n'
    )
    for block in blocks:
        exec(block.replace("load_model()", f"load_model({str(tiny_nli_model)!r})"), {})
    assert "sports" in capsys.readouterr().out


def test_record_functions_give_errors_as_data_by_default(tiny_nli_model):
    """score_records (and evaluate) yield a bad record's error as its Result, as docs/python-api.md
    says; on_error="fail" raises it."""
    from squeezenli.records.readers import RowFailure

    nli = squeezenli.load_model(str(tiny_nli_model))
    records = [
        squeezenli.Record("<rows>", 1, {"premise": "A dog.", "hypothesis": "An animal."}),
        squeezenli.Record("<rows>", 2, {"premise": "A dog."}),
        squeezenli.Record("<rows>", 3, {"premise": "A cat.", "hypothesis": 4}),
    ]
    results = list(squeezenli.score_records(nli, records))
    assert [r.error is None for r in results] == [True, False, False]
    assert results[1].error is not None and results[1].error.field == "hypothesis"
    with pytest.raises(RowFailure):
        list(squeezenli.score_records(nli, records, on_error="fail"))
    gold = [squeezenli.Record("<g>", 1, {**r.data, "label": "neutral"}) for r in records]
    assert squeezenli.evaluate(nli, gold).failed == 2
