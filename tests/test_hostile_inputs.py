"""Hostile inputs, round two (issue 24): no run destroys an input, drops its rows with exit 0,
or serves a build made from other files than its key says."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error, run_env
from tinymodel import random_tensors, tiny_config

ROWS = [
    {"id": 1, "premise": "A man plays a guitar.", "hypothesis": "A person makes music."},
    {"id": 2, "premise": "The dog runs in the park.", "hypothesis": "A cat sleeps."},
    {"id": 3, "premise": "Some people eat food.", "hypothesis": "Nobody eats."},
]


def _run(args: list[str], stdin=None, text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "squeezenli", *args],
        env=run_env(),
        stdin=stdin,
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture()
def pairs(tmp_path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


@pytest.mark.parametrize(
    "command",
    [["batch"], ["classify", "--labels", "a,b"], ["eval", "--label-field", "id"]],
)
@pytest.mark.parametrize("target", ["same", "/dev/stdin"])
def test_errors_naming_the_file_behind_stdin_is_refused(tiny_nli_model, pairs, command, target):
    before = pairs.read_bytes()
    errors = str(pairs) if target == "same" else target
    with open(pairs, "rb") as stdin:
        done = _run(
            [*command, "-m", str(tiny_nli_model), "--precision", "fp32", "--errors", errors],
            stdin=stdin,
        )
    line = one_error(done, 2)
    assert "--errors" in line and "input" in line
    assert pairs.read_bytes() == before  # not emptied
    assert done.stdout == ""


def test_errors_may_be_dev_null_while_stdin_is_too(tiny_nli_model):
    with open(os.devnull, "rb") as stdin:
        done = _run(["batch", "-m", str(tiny_nli_model), "--errors", os.devnull], stdin=stdin)
    assert done.returncode == 0, done.stderr


def _scored(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines()[1:] if line]


@pytest.mark.parametrize("how", ["dev-stdin", "fifo"])
def test_a_pipe_named_as_a_file_is_read_once_for_csv_output(tiny_nli_model, pairs, tmp_path, how):
    args = ["batch", "-m", str(tiny_nli_model), "--precision", "fp32", "-o", "csv"]
    if how == "dev-stdin":
        done = _run([*args, "/dev/stdin"], text=pairs.read_text())
    else:
        fifo = tmp_path / "pairs.fifo"
        os.mkfifo(fifo)

        def feed() -> None:
            with open(fifo, "w") as out:
                out.write(pairs.read_text())

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        done = _run([*args, str(fifo)])
        writer.join(timeout=10)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split(",")
    assert header[:3] == ["id", "premise", "hypothesis"] and "prediction" in header
    assert [line.split(",")[0] for line in _scored(done.stdout)] == ["1", "2", "3"]


def test_weights_swapped_while_waiting_for_the_build_lock_are_not_filed_under_the_old_key(
    tiny_model, tmp_path, monkeypatch
):
    """Run A computes its key, waits on the lock, and meanwhile the weights change: what A
    builds must be filed under the key of what it read, not of what was there before."""
    from safetensors.numpy import save_file

    from squeezenli.models import build
    from squeezenli.models.hub import resolve
    from squeezenli.runtime.model import load_model

    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    weights = folder / "model.safetensors"
    first = weights.read_bytes()
    pairs = [(r["premise"], r["hypothesis"]) for r in ROWS]
    expected_first = load_model(str(folder), precision="fp32").logits(pairs)
    build.discard_builds(resolve(str(folder)))
    save_file(random_tensors(tiny_config(), seed=7), str(tmp_path / "second.safetensors"))
    second = (tmp_path / "second.safetensors").read_bytes()
    real_lock = build.build_lock

    @contextlib.contextmanager
    def swapped_while_waiting(build_dir):
        with real_lock(build_dir):
            if weights.read_bytes() == first:
                weights.write_bytes(second)  # the user's edit lands during the wait
            yield

    monkeypatch.setattr(build, "build_lock", swapped_while_waiting)
    files = resolve(str(folder))
    key_of_first = build.build_key(files)
    built = build.ensure_onnx(files, "fp32")
    monkeypatch.setattr(build, "build_lock", real_lock)
    assert not built.name.startswith(key_of_first)
    assert not build.built_path(files, "fp32", key_of_first).exists()
    weights.write_bytes(first)  # restored: its answers, not the second weights'
    again = load_model(str(folder), precision="fp32").logits(pairs)
    np.testing.assert_allclose(again, expected_first, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-32", "cp037", "undefined", "punycode"]
)
def test_an_encoding_that_does_not_keep_ascii_is_refused_up_front(tiny_nli_model, pairs, encoding):
    done = _run(["batch", str(pairs), "-m", str(tiny_nli_model), "--encoding", encoding])
    line = one_error(done, 2)
    assert f"--encoding {encoding}" in line and "iconv" in line
    assert done.stdout == ""


def test_nan_in_a_json_line_is_that_rows_error_not_invalid_output(tiny_nli_model, tmp_path):
    path = tmp_path / "nan.jsonl"
    rows = [
        '{"premise": "A man plays.", "hypothesis": "Music.", "x": NaN}',
        '{"premise": "A man plays.", "hypothesis": "Music.", "big": 123456789012345678901, '
        '"x": Infinity}',
        json.dumps(ROWS[0]),
    ]
    path.write_text("\n".join(rows) + "\n")
    done = _run(["batch", str(path), "-m", str(tiny_nli_model), "--on-error", "skip"])
    assert done.returncode == 1, done.stderr
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == [1]  # valid JSON
    assert f"{path}:1: invalid JSON" in done.stderr
    assert f"{path}:2:" in done.stderr and "Infinity" in done.stderr


def test_bad_utf8_in_a_json_line_says_where_and_suggests_an_encoding(tiny_nli_model, tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"premise": "caf\xe9", "hypothesis": "A drink."}\n')
    done = _run(["batch", str(path), "-m", str(tiny_nli_model)])
    line = one_error(done, 2)
    assert "not valid utf-8 at byte 17" in line and "--encoding" in line and "latin-1" in line


def test_output_fields_renaming_one_field_twice_is_refused(tiny_nli_model, pairs):
    args = ["batch", str(pairs), "-m", str(tiny_nli_model)]
    done = _run([*args, "--output-fields", "prediction=a,prediction=b"])
    assert "renames 'prediction' twice" in one_error(done, 2)
    onto = _run([*args, "--output-fields", "prediction=scores"])
    assert "two result fields one name" in one_error(onto, 2)


@pytest.mark.parametrize("damage", ['"text"', "null", "[1, 2]", '{"pairs": "512"}', ""])
def test_a_damaged_stored_measurement_is_measured_again(tiny_model, tmp_path, damage):
    from squeezenli.models.build import measurement_path
    from squeezenli.models.hub import resolve
    from squeezenli.models.info import model_info
    from squeezenli.runtime.model import load_model
    from squeezenli.runtime.spec import ModelSpec

    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    first = load_model(str(folder), precision="int8").agreement
    path = measurement_path(resolve(str(folder)), "int8", "agreement")
    assert path.is_file()
    path.write_text(damage)
    assert model_info(ModelSpec(str(folder)))["int8_agreement"] is None  # not a traceback
    again = load_model(str(folder), precision="int8").agreement
    assert again == first and json.loads(path.read_text())["pairs"] == first.pairs


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t")])
def test_blank_lines_before_the_header_are_skipped(tiny_nli_model, tmp_path, suffix, sep):
    path = tmp_path / f"blank{suffix}"
    lines = [sep.join(["id", "premise", "hypothesis"])]
    lines += [sep.join([str(r["id"]), r["premise"], r["hypothesis"]]) for r in ROWS]
    path.write_text("\n\r\n" + "\n".join(lines) + "\n")
    done = _run(["batch", str(path), "-m", str(tiny_nli_model)])
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["1", "2", "3"]


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t")])
def test_cr_only_line_endings_are_one_clear_error(tiny_nli_model, tmp_path, suffix, sep):
    path = tmp_path / f"mac{suffix}"
    lines = [sep.join(["premise", "hypothesis"])] + [sep.join(["a b", "c d"])] * 3
    path.write_bytes("\r".join(lines).encode() + b"\r")
    done = _run(["batch", str(path), "-m", str(tiny_nli_model)])
    line = one_error(done, 2)
    assert str(path) in line and "CR alone" in line and "tr " in line


def test_a_wide_row_is_read_and_written_whole():
    """30k columns, each kept in order (they took quadratic time before: 26 s to read 24k)."""
    import io

    from squeezenli.records.readers import ReadOptions, read_records
    from squeezenli.records.writers import DelimitedWriter

    columns = [f"c{i}" for i in range(30_000)] + ["premise", "hypothesis"]
    data = (",".join(columns) + "\n" + ",".join(["x"] * len(columns)) + "\n").encode()
    [record] = read_records(io.BufferedReader(io.BytesIO(data)), "w.csv", "csv", ReadOptions())
    out = io.BytesIO()
    writer = DelimitedWriter(out, "csv", columns)
    writer.write(record.data)
    assert out.getvalue().decode().splitlines()[1].split(",") == ["x"] * len(columns)


EXPORTS = Path(__file__).parent / "fixtures" / "exports"


@pytest.mark.parametrize("precision", ["fp32", "int8", "auto"])
def test_a_folder_that_ships_only_a_variant_runs_it(tmp_path, precision):
    """No onnx/model.onnx to measure the variant against: the variant is the export (it was
    an IndexError traceback)."""
    folder = tmp_path / "variant-only"
    shutil.copytree(EXPORTS / "roberta", folder)
    (folder / "onnx/model.onnx").rename(folder / "onnx/model_quantized.onnx")
    args = ["-m", str(folder), "--onnx-file", "onnx/model_quantized.onnx"]
    done = _run([*ROWS[0].values()][1:] + [*args, "--precision", precision, "--json"])
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["scores"]) == {"entailment", "neutral", "contradiction"}
    info = _run(["model", "info", *args, "--json"])
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["weights"] == "onnx/model_quantized.onnx"


@pytest.mark.parametrize("output", ["jsonl", "csv"])
@pytest.mark.parametrize("damage", ["truncated", "trailing-garbage"])
def test_a_damaged_gzip_writes_every_row_before_the_damage(
    tiny_nli_model, tmp_path, output, damage
):
    import gzip

    rows = [{"premise": f"a man plays song {i}", "hypothesis": "music"} for i in range(3000)]
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else whole + b"garbage!")
    done = _run(["batch", str(path), "-m", str(tiny_nli_model), "-o", output])
    line = one_error(done, 2)
    assert str(path) in line and "gzip" in line
    written = done.stdout.splitlines()[1:] if output == "csv" else done.stdout.splitlines()
    if damage == "truncated":
        assert 0 < len(written) < len(rows)
    else:
        assert len(written) == len(rows)
    first = written[0].split(",")[0] if output == "csv" else json.loads(written[0])["premise"]
    assert first == "a man plays song 0"


def _external_export(folder: Path, blobs: Path, data_kind: str = "symlink") -> None:
    """The roberta stand-in as the Hugging Face cache lays out an export over 2 GB: its files
    are symbolic links into blobs/, the tensors in onnx/model.onnx_data."""
    import onnx

    shutil.copytree(EXPORTS / "roberta", folder)
    blobs.mkdir()
    model = onnx.load(str(folder / "onnx/model.onnx"))
    (folder / "onnx/model.onnx").unlink()
    onnx.save_model(
        model,
        str(blobs / "model.onnx"),
        save_as_external_data=True,
        location="model.onnx_data",
        size_threshold=0,
    )
    (folder / "onnx/model.onnx").symlink_to(blobs / "model.onnx")
    if data_kind == "symlink":
        (folder / "onnx/model.onnx_data").symlink_to(blobs / "model.onnx_data")
    else:
        os.mkfifo(folder / "onnx/model.onnx_data")


@pytest.mark.parametrize("precision", ["int8", "auto"])
def test_external_data_behind_symbolic_links_quantizes(tmp_path, precision):
    folder = tmp_path / "export"
    _external_export(folder, tmp_path / "blobs")
    pair = [ROWS[0]["premise"], ROWS[0]["hypothesis"]]
    done = _run([*pair, "-m", str(folder), "--precision", precision, "--json"])
    assert done.returncode == 0, done.stderr
    fp32 = _run([*pair, "-m", str(folder), "--precision", "fp32", "--json"])
    ours, exact = (json.loads(d.stdout)["scores"] for d in (done, fp32))
    assert max(abs(ours[k] - exact[k]) for k in exact) < 0.2


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_external_data_that_is_a_fifo_is_refused_not_waited_on(tmp_path, precision):
    folder = tmp_path / "export"
    _external_export(folder, tmp_path / "blobs", data_kind="fifo")
    (tmp_path / "blobs" / "model.onnx_data").unlink()
    pair = [ROWS[0]["premise"], ROWS[0]["hypothesis"]]
    line = one_error(_run([*pair, "-m", str(folder), "--precision", precision]), 3)
    assert "model.onnx_data" in line and "not a regular file" in line
