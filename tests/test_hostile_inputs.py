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
import orjson
import pytest
from conftest import one_error, run_cli, run_env
from tinymodel import random_tensors, tiny_config

ROWS = [
    {"id": 1, "premise": "A man plays a guitar.", "hypothesis": "A person makes music."},
    {"id": 2, "premise": "The dog runs in the park.", "hypothesis": "A cat sleeps."},
    {"id": 3, "premise": "Some people eat food.", "hypothesis": "Nobody eats."},
]


def _run(args: list[str], stdin=None, text: str | None = None) -> subprocess.CompletedProcess:
    return run_cli(args, text, stdin)


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


@pytest.mark.parametrize("encoding", ["cp037", "undefined", "punycode"])  # UTF-16/32 are read
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


@pytest.mark.parametrize("output", ["jsonl", "csv", "tsv"])
def test_a_field_nested_as_deep_as_the_reader_accepts_is_written_back(
    tiny_nli_model, tmp_path, output
):
    depth = 1020  # orjson reads up to 1024 levels and writes 254; json's encoder recurses
    nested = "[" * depth + "1" + "]" * depth
    path = tmp_path / "deep.jsonl"
    path.write_text(f'{{"premise": "A man plays.", "hypothesis": "Music.", "x": {nested}}}\n')
    done = _run(["batch", str(path), "-m", str(tiny_nli_model), "-o", output])
    assert done.returncode == 0, done.stderr
    if output == "jsonl":
        value = orjson.loads(done.stdout)["x"]
    else:
        header, cells = (
            line.split("," if output == "csv" else "\t") for line in done.stdout.splitlines()
        )
        value = orjson.loads(cells[header.index("x")])
    for _ in range(depth):
        (value,) = value
    assert value == 1


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
    from squeezenli.runtime.info import model_info
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


def _widen_output(source: Path, target: Path) -> None:
    """The export with one more logit per pair (its first, repeated): a variant that is not
    a variant of this export."""
    import onnx
    from onnx import helper

    model = onnx.load(str(source))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["logits3" if name == "logits" else name for name in node.output]
    graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.array([v], np.int64), n)
            for n, v in (("w_start", 0), ("w_end", 1), ("w_axis", 1))
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Slice", ["logits3", "w_start", "w_end", "w_axis"], ["w_first"]),
            helper.make_node("Concat", ["logits3", "w_first"], ["logits"], axis=1),
        ]
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["b", 4]))
    onnx.save_model(model, str(target))


@pytest.mark.parametrize("precision", ["int8", "auto"])
def test_a_variant_with_other_outputs_than_its_export_is_refused(tmp_path, precision):
    folder = tmp_path / "export"
    shutil.copytree(EXPORTS / "roberta", folder)
    _widen_output(folder / "onnx/model.onnx", folder / "onnx/model_quantized.onnx")
    pair = [ROWS[0]["premise"], ROWS[0]["hypothesis"]]
    args = ["-m", str(folder), "--onnx-file", "onnx/model_quantized.onnx"]
    line = one_error(_run([*pair, *args, "--precision", precision]), 3)
    assert "onnx/model_quantized.onnx gives 4 logits per pair and onnx/model.onnx 3" in line
    assert "--precision fp32" in line


@pytest.mark.parametrize(
    ("name", "damage", "says"),
    [
        ("calibration.jsonl", None, "cannot be read"),
        ("calibration.jsonl", b"\x00garbage\n", "is damaged (line 1:"),
        ("calibration.jsonl", b'{"premise": "A man."}\n', "line 1 has no text in 'hypothesis'"),
        ("calibration.jsonl", b"\n\n", "is empty"),
        ("label_check.jsonl", b"[1, 2]\n", "line 1 is not an object"),
        ("label_check.jsonl", b'{"premise": "a", "hypothesis": "b", "label": "x"}\n', "'label'"),
    ],
)
def test_a_damaged_packaged_data_file_is_one_error(tiny_nli_model, tmp_path, name, damage, says):
    """The package's own reference pairs are files on disk like any other: an install with
    one missing or damaged says so, and how to repair it, without a traceback."""
    import squeezenli

    package = tmp_path / "site" / "squeezenli"
    shutil.copytree(Path(squeezenli.__file__).parent, package)
    data = package / "data" / name
    if damage is None:
        data.unlink()
    else:
        data.write_bytes(damage)
    command = ["-m", str(tiny_nli_model)]
    if name == "calibration.jsonl":
        command = ["A man plays.", "Music.", *command, "--precision", "int8"]
    else:
        command = ["model", "check-labels", *command]
    done = subprocess.run(
        [sys.executable, "-m", "squeezenli", *command],
        env=run_env(PYTHONPATH=str(package.parent), HF_HOME=str(tmp_path / "hf")),  # unmeasured
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = one_error(done, 3)
    assert str(data) in line and says in line and "reinstall squeezenli" in line


def _fixed_size_export(folder: Path, rows: int | None, length: int) -> None:
    """The roberta stand-in as an export made for one input size ([rows, length]), as
    some exports for mobile and for hardware are (a real one: [batch, 160])."""
    import onnx

    shutil.copytree(EXPORTS / "roberta", folder)
    model = onnx.load(str(folder / "onnx/model.onnx"))
    for tensor in model.graph.input:
        dims = tensor.type.tensor_type.shape.dim
        if rows is not None:
            dims[0].dim_value = rows
        dims[1].dim_value = length
    onnx.save_model(model, str(folder / "onnx/model.onnx"))


@pytest.mark.parametrize("rows", [None, 1, 4])
def test_a_fixed_size_export_is_padded_to_its_size(tmp_path, rows):
    dynamic, fixed = tmp_path / "dynamic", tmp_path / "fixed"
    shutil.copytree(EXPORTS / "roberta", dynamic)
    _fixed_size_export(fixed, rows, 40)
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 3))

    def scores(folder: Path, *extra: str) -> np.ndarray:
        done = _run(["batch", str(source), "-m", str(folder), "--precision", "fp32", *extra])
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line)["scores"] for line in done.stdout.splitlines()]
        return np.array([[r[k] for k in sorted(r)] for r in rows])

    np.testing.assert_allclose(scores(fixed), scores(dynamic), atol=1e-4, rtol=0)
    line = one_error(_run([*[*ROWS[0].values()][1:], "-m", str(fixed), "--max-length", "64"]), 2)
    assert "made for exactly 40 tokens per pair (give 40 or less)" in line


def _summary(stderr: str) -> tuple[int, int]:
    (line,) = [line for line in stderr.splitlines() if " rows scored, " in line]
    scored, failed = line.split(": ", 1)[1].split(" rows scored, ")
    return int(scored), int(failed.split(" failed")[0])


@pytest.mark.parametrize("on_error", ["fail", "skip"])
@pytest.mark.parametrize(
    ("output", "odd"), [("jsonl", {"prediction": 1}), ("csv", {"late": 1}), ("tsv", {"late": 1})]
)
def test_the_summary_counts_exactly_the_rows_written_and_reported(
    tiny_nli_model, on_error, output, odd
):
    """A row the output cannot take (a field that collides with the result's; a field a CSV
    header read from stdin lacks) is that row's error: reported and the run goes on under
    skip, the run's end under fail; the summary counts what was written and reported."""
    rows = [dict(ROWS[0]), dict(ROWS[1]), {**ROWS[2], **odd}, dict(ROWS[0])]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    args = ["batch", "-", "-m", str(tiny_nli_model), "-o", output, "--on-error", on_error]
    done = _run(args, text=text)
    written = done.stdout.splitlines()[(output != "jsonl") :]
    assert "Traceback" not in done.stderr
    assert "<stdin>:3:" in done.stderr
    if on_error == "skip":
        assert done.returncode == 1 and len(written) == 3
    else:
        assert done.returncode == 2 and len(written) == 2
    assert _summary(done.stderr) == (len(written), 1)


def _long_text(seed: int, chars: int) -> str:
    """Words, punctuation, accents and runs of every kind of white space, past a piece."""
    rng = np.random.default_rng(seed)
    words = ["music", "A", "man", "plays", "guitar,", "naïve", "café.", "(stage)", "don't", "1999"]
    spaces = [" ", " ", " ", "  ", "\n", "\t", " \n ", "\u3000", "   "]
    parts, size = [], 0
    while size < chars:
        parts.append(words[rng.integers(len(words))] + spaces[rng.integers(len(spaces))])
        size += len(parts[-1])
    return "".join(parts)


@pytest.mark.parametrize("family", ["roberta", "deberta-v3", "distilbert", "wordpiece"])
# 65, 66: an odd budget for one template or the other (it splits two long sides by which is
# longer); 10**6: nothing cut.
@pytest.mark.parametrize("max_length", [65, 66, 10**6])
def test_a_long_text_encodes_in_pieces_to_the_ids_of_the_whole(
    tiny_model, monkeypatch, family, max_length
):
    from squeezenli.runtime import tokenizer as module

    folder = tiny_model if family == "wordpiece" else EXPORTS / family
    files = {
        "tokenizer_json": None if family == "wordpiece" else folder / "tokenizer.json",
        "vocab": folder / "vocab.txt" if family == "wordpiece" else None,
        "tokenizer_config": folder / "tokenizer_config.json",
    }
    tokenizer = module.PairTokenizer.from_files(**files, max_length=max_length)
    long, longer = _long_text(1, 3 * module.PIECE_CHARS), _long_text(2, 3 * module.PIECE_CHARS + 7)
    pairs = [(long, "A man plays."), ("Short.", long), (long, longer), (longer, long)]
    pieces = tokenizer.encode(pairs)
    monkeypatch.setattr(module, "PIECE_CHARS", 10 * len(longer))  # each text encoded whole
    assert pieces == tokenizer.encode(pairs)
