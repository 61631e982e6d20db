"""Crafted and damaged model files end in one line naming the file and the cause, with the
model exit code: no segfault, no read outside a file's own bytes, no traceback, no
unbounded memory (issue 13)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error, squeezenli
from hostile import claim_member_size, write_torch_zip
from tinymodel import random_tensors, tiny_config

PAIR = ("A man plays a guitar.", "A person makes music.")


def _model(tiny_model: Path, tmp_path: Path, name: str = "m") -> Path:
    folder = tmp_path / name
    shutil.copytree(tiny_model, folder)
    return folder


def _refused(folder: Path, *extra: str, code: int = 3) -> str:
    done = squeezenli(*PAIR, "--model", str(folder), "--precision", "fp32", *extra)
    line = one_error(done, code)
    assert done.stdout == ""
    return line


def _bin_model(tiny_model: Path, tmp_path: Path, views=None, **kwargs) -> Path:
    folder = _model(tiny_model, tmp_path)
    (folder / "model.safetensors").unlink()
    write_torch_zip(folder / "pytorch_model.bin", random_tensors(tiny_config()), views, **kwargs)
    return folder


@pytest.mark.parametrize(
    "view",
    [
        (10**6, (3,), (1,)),  # offset past the storage
        (0, (4000,), (1,)),  # size past it
        (0, (3, 3), (1, 10**9)),  # a stride that leaps out
        (2, (3,), (-1,)),  # negative stride
        (-5, (3,), (1,)),  # negative offset
        (0, (10**6, 10**6), (0, 0)),  # a broadcast view that would allocate terabytes
    ],
)
def test_a_tensor_view_past_its_storage_is_refused(tiny_model, tmp_path, view):
    folder = _bin_model(tiny_model, tmp_path, {"classifier.bias": view})
    line = _refused(folder)
    assert "pytorch_model.bin: refused to load" in line


def test_the_crafted_zip_writer_makes_a_loadable_checkpoint(tiny_model, tmp_path):
    # The tests above fail on the view alone: the same file with honest views scores.
    folder = _bin_model(tiny_model, tmp_path)
    done = squeezenli(*PAIR, "--model", str(folder), "--precision", "fp32")
    assert done.returncode == 0, done.stderr


def test_a_member_that_claims_more_than_the_file_holds_is_refused(tiny_model, tmp_path):
    folder = _bin_model(tiny_model, tmp_path)
    claim_member_size(folder / "pytorch_model.bin", "archive/data/0", 3 << 30)
    assert "claims 3221225472 bytes" in _refused(folder)


def test_a_compressed_member_is_refused(tiny_model, tmp_path):
    folder = _bin_model(tiny_model, tmp_path, compress=True)
    assert "is compressed" in _refused(folder)


@pytest.mark.parametrize(
    ("tensor", "shape"),
    [
        ("transformer.encoder.layers.0.attention.query.weight", (32, 32, 1)),
        ("transformer.encoder.layers.1.attention.key.bias", (31,)),
        ("transformer.encoder.layers.0.output.layernorm.weight", (7,)),
        ("transformer.embeddings.word_embeddings.weight", (10, 32)),
        ("classifier.weight", (5, 32)),
    ],
)
def test_weights_of_the_wrong_shape_are_refused_before_building(
    tiny_model, tmp_path, tensor, shape
):
    from safetensors.numpy import save_file

    folder = _model(tiny_model, tmp_path)
    tensors = random_tensors(tiny_config())
    tensors[tensor] = np.zeros(shape, np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    line = _refused(folder)
    assert f"tensor '{tensor}' has shape {list(shape)}" in line


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("num_attention_heads", 0, "num_attention_heads must be an integer from 1"),
        ("q_groups", 0, "q_groups must be an integer from 1"),
        ("intermediate_groups", -4, "intermediate_groups must be an integer from 1"),
        ("output_groups", 3, "output_groups 3 does not divide"),
        ("num_attention_heads", 5, "is not a multiple of num_attention_heads 5"),
        ("num_labels", 10**9, "num_labels must be from 1 to"),
        ("architectures", 7, "architectures must be a list"),
        ("max_position_embeddings", "abc", "max_position_embeddings must be an integer"),
        ("hidden_size", 1.5, "hidden_size must be an integer"),
        ("layer_norm_eps", "x", "layer_norm_eps must be"),
        ("id2label", {"0": "a", "5": "b"}, "id2label must number its labels 0 to 1"),
    ],
)
def test_a_bad_config_value_is_named(tiny_model, tmp_path, field, value, says):
    folder = _model(tiny_model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    if field == "num_labels":
        config.pop("id2label", None)
    (folder / "config.json").write_text(json.dumps(config))
    line = _refused(folder)
    assert "config.json" in line and says in line


def test_bad_tokenizer_options_are_named(tiny_model, tmp_path):
    folder = _model(tiny_model, tmp_path)
    (folder / "tokenizer_config.json").write_text(json.dumps({"strip_accents": "yes"}))
    assert "tokenizer_config.json: strip_accents has the wrong type" in _refused(folder)


def test_a_vocabulary_past_the_embedding_table_is_refused(tiny_model, tmp_path):
    folder = _model(tiny_model, tmp_path)
    with open(folder / "vocab.txt", "a") as vocab:
        vocab.write("".join(f"extra{i}\n" for i in range(50)))
    assert "but vocab_size is" in _refused(folder)


def test_a_token_type_table_too_small_for_pairs_is_refused(tiny_model, tmp_path):
    from safetensors.numpy import save_file

    folder = _model(tiny_model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["type_vocab_size"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    tensors = random_tensors(config)
    save_file(tensors, str(folder / "model.safetensors"))
    assert "pairs use token type 1 but type_vocab_size is 1" in _refused(folder)


def test_duplicate_label_names_are_refused_unless_the_user_names_them(tiny_model, tmp_path):
    folder = _model(tiny_model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "entailment", "1": "Entailment", "2": "neutral"}
    (folder / "config.json").write_text(json.dumps(config))
    assert "names entailment more than once" in _refused(folder)
    named = squeezenli(
        *PAIR, "--model", str(folder), "--precision", "fp32", "--label-order", "c,e,n"
    )
    assert named.returncode == 0, named.stderr


def test_nan_logits_are_each_rows_error(tiny_nli_model, tmp_path):
    from safetensors.numpy import save_file

    folder = _model(tiny_nli_model, tmp_path)
    tensors = random_tensors(tiny_config())
    tensors["classifier.bias"][1] = np.nan
    save_file(tensors, str(folder / "model.safetensors"))
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"premise": PAIR[0], "hypothesis": PAIR[1]}) + "\n" * 2)
    done = squeezenli(
        "batch", str(rows), "--model", str(folder), "--precision", "fp32", "--on-error", "skip"
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert "rows.jsonl:1: the model gave non-finite logits" in done.stderr
    assert "Traceback" not in done.stderr
    scored = squeezenli(*PAIR, "--model", str(folder), "--label-order", "e,n,c")
    assert scored.returncode == 2, scored.stderr  # the pair's error, in one line
    assert "<arguments>:1: the model gave non-finite logits" in scored.stderr
    assert "Traceback" not in scored.stderr
    args = ["--label-order", "e,n,c", "--precision", "int8"]
    measured = squeezenli(*PAIR, "--model", str(folder), *args)
    assert measured.returncode == 3, measured.stderr
    assert (
        "cannot score the calibration pairs: pair 0: the model gave non-finite" in measured.stderr
    )


def _export(folder: Path, outputs: list[tuple[str, int]]) -> None:
    """A stand-in ONNX 'export': each output is [batch, width] zeros, or [batch] for width 0."""
    import onnx
    from onnx import TensorProto, helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "l"])
    nodes = [helper.make_node("Cast", ["input_ids"], ["x"], to=TensorProto.FLOAT)]
    initializers, infos = [], []
    for name, width in outputs:
        keep = int(width > 0)
        nodes.append(helper.make_node("ReduceSum", ["x", "axis1"], [name + "_s"], keepdims=keep))
        if keep:
            zeros = onnx.numpy_helper.from_array(np.zeros((1, width), np.float32), name + "_w")
            initializers.append(zeros)
            nodes.append(helper.make_node("MatMul", [name + "_s", name + "_w"], [name]))
        else:
            nodes.append(helper.make_node("Identity", [name + "_s"], [name]))
        shape = ["b", width] if keep else ["b"]
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    initializers.append(onnx.numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    graph = helper.make_graph(nodes, "export", [ids], infos, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (folder / "model.safetensors").unlink(missing_ok=True)
    onnx.save_model(model, str(folder / "model.onnx"))


def test_the_stand_in_export_scores_when_its_outputs_are_right(tiny_model, tmp_path):
    folder = _model(tiny_model, tmp_path)
    _export(folder, [("logits", 3)])
    done = squeezenli(
        *PAIR, "--model", str(folder), "--precision", "fp32", "--label-order", "e,n,c"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("outputs", "says"),
    [
        ([("logits", 5)], "gives 5 logits per pair, but its config names 3"),
        ([("logits", 0)], "has shape [10]"),
        ([("other", 3)], "not an ONNX sequence classifier"),
        ([("logits", 1)], "gives 1 logits per pair"),
        ([("logits", 3), ("a", 2), ("b", 2), ("c", 2), ("d", 2)], None),
    ],
)
def test_an_export_with_the_wrong_outputs_is_refused(tiny_model, tmp_path, outputs, says):
    folder = _model(tiny_model, tmp_path)
    _export(folder, outputs)
    if says is None:  # extra outputs beside a right 'logits' are ignored
        done = squeezenli(*PAIR, "--model", str(folder), "--label-order", "e,n,c")
        assert done.returncode == 0, done.stderr
        return
    assert says in _refused(folder)


def _backtracking_tokenizer(folder: Path) -> None:
    """tokenizer.json whose pre-tokenizer regex backtracks past oniguruma's retry limit on
    a run of a's that ends without a b: the library panics on such a text."""
    from tokenizers import Regex, pre_tokenizers

    from squeezenli.runtime.tokenizer import _read_options, _wordpiece

    options = _read_options(folder / "tokenizer_config.json")
    tokenizer, _ = _wordpiece(folder / "vocab.txt", options)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex("(a|aa)+b"), "isolated"), pre_tokenizers.BertPreTokenizer()]
    )
    tokenizer.save(str(folder / "tokenizer.json"))


def test_a_tokenizer_panic_is_that_rows_error(tiny_nli_model, tmp_path):
    folder = _model(tiny_nli_model, tmp_path)
    _backtracking_tokenizer(folder)
    bad = "a" * 60 + "c"
    rows = tmp_path / "rows.jsonl"
    texts = [PAIR, (bad, "x"), PAIR, ("x", bad)]
    rows.write_text("".join(json.dumps({"premise": p, "hypothesis": h}) + "\n" for p, h in texts))
    args = ("batch", str(rows), "--model", str(folder), "--precision", "fp32")
    skipped = squeezenli(*args, "--on-error", "skip")
    assert skipped.returncode == 1, skipped.stderr
    scored = [json.loads(line) for line in skipped.stdout.splitlines()]
    assert [r["premise"] for r in scored] == [PAIR[0], PAIR[0]]
    for line in (2, 4):
        assert f"rows.jsonl:{line}: the tokenizer failed on this text (" in skipped.stderr
    assert "retry-limit-in-match" in skipped.stderr
    assert "panicked" not in skipped.stderr and "Traceback" not in skipped.stderr
    failed = squeezenli(*args)
    assert failed.returncode == 2, failed.stderr
    assert "rows.jsonl:2: the tokenizer failed" in failed.stderr
    assert len(failed.stdout.splitlines()) == 1  # the row before it, then the stop


def _dropping_tokenizer(folder: Path, pattern: str) -> None:
    """tokenizer.json whose pre-tokenizer removes what `pattern` matches before WordPiece."""
    from tokenizers import Regex, pre_tokenizers

    from squeezenli.runtime.tokenizer import _read_options, _wordpiece

    options = _read_options(folder / "tokenizer_config.json")
    tokenizer, _ = _wordpiece(folder / "vocab.txt", options)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(pattern), "removed"), pre_tokenizers.BertPreTokenizer()]
    )
    tokenizer.save(str(folder / "tokenizer.json"))


def test_a_tokenizer_that_drops_every_text_is_refused(tiny_nli_model, tmp_path):
    """A pre-tokenizer that removes everything made every pair [CLS] [SEP] [SEP]: the same
    scores for any two texts, silently."""
    folder = _model(tiny_nli_model, tmp_path)
    _dropping_tokenizer(folder, ".")
    line = one_error(squeezenli(*PAIR, "--model", str(folder), "--precision", "fp32"), 3)
    assert "tokenizer.json: the tokenizer gives no token for 'a' or 'b'" in line


def test_a_text_the_tokenizer_drops_whole_is_that_rows_error(tiny_nli_model, tmp_path):
    folder = _model(tiny_nli_model, tmp_path)
    _dropping_tokenizer(folder, "[xyz]")  # removes x, y and z only
    rows = tmp_path / "rows.jsonl"
    texts = [PAIR, ("xyz zyx", "A man."), ("A man.", "zz")]
    rows.write_text("".join(json.dumps({"premise": p, "hypothesis": h}) + "\n" for p, h in texts))
    args = ("batch", str(rows), "--model", str(folder), "--precision", "fp32", "--on-error")
    done = squeezenli(*args, "skip")
    assert done.returncode == 1, done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert "rows.jsonl:2: the tokenizer gives no token for the first text of the pair" in (
        done.stderr
    )
    assert "rows.jsonl:3: the tokenizer gives no token for the second text" in done.stderr


@pytest.mark.parametrize("precision", ["fp32", "int8", "auto"])
def test_an_export_that_is_no_classifier_is_named_and_never_quantized(
    tiny_model, tmp_path, precision
):
    folder = _model(tiny_model, tmp_path)
    _export(folder, [("other", 3)])
    home = tmp_path / "hf"
    done = squeezenli(*PAIR, "--model", str(folder), "--precision", precision, HF_HOME=str(home))
    line = one_error(done, 3)
    assert line.startswith(f"squeezenli: error: {folder / 'model.onnx'}: not an ONNX sequence")
    assert not [p for p in home.rglob("*.onnx") if "int8" in p.name]  # nothing was built


def test_an_allocation_failure_is_one_line_without_onnxruntimes_source(tiny_model, tmp_path):
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    folder = _model(tiny_model, tmp_path)
    (folder / "model.safetensors").unlink()
    value = h.make_tensor("one", T.FLOAT, [1], [1.0])
    nodes = [
        h.make_node("Cast", ["input_ids"], ["f"], to=T.FLOAT),
        h.make_node("ConstantOfShape", ["shape"], ["big"], value=value),  # 4 TB of floats
        h.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
        h.make_node("ReduceSum", ["f", "axis"], ["r"], keepdims=1),
        h.make_node("Mul", ["r", "s"], ["r2"]),
        h.make_node("Tile", ["r2", "repeats"], ["logits"]),
    ]
    constants = {"shape": [10**6, 10**6], "axis": [1], "repeats": [1, 3]}
    graph = h.make_graph(
        nodes,
        "alloc",
        [h.make_tensor_value_info("input_ids", T.INT64, ["b", "l"])],
        [h.make_tensor_value_info("logits", T.FLOAT, ["b", 3])],
        [onnx.numpy_helper.from_array(np.array(v, np.int64), n) for n, v in constants.items()],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(folder / "model.onnx"))
    line = _refused(folder, "--label-order", "e,n,c")
    assert "alloc" in line  # at run time (Failed to allocate memory), or at load (bad_alloc)
    assert ".cc:" not in line and "onnxruntime::" not in line


def test_what_other_threads_write_to_stderr_while_a_window_tokenizes_is_kept():
    # fd 2 points at a pipe while the tokenizers library runs (to drop a Rust panic's
    # lines): a line another thread writes then (a skipped row's report, an access-log
    # line) must come out, and only the panic's lines are dropped.
    code = (
        "import os, threading\n"
        "from squeezenli.runtime.tokenizer import _panic_messages_hidden\n"
        "with _panic_messages_hidden():\n"
        "    t = threading.Thread(target=os.write, args=(2, b'from another thread\\n'))\n"
        "    t.start(); t.join()\n"
        "    os.write(2, b\"thread '<unnamed>' (21162) panicked at src/x.rs:1:2:\\nboom\\n\")\n"
        "    os.write(2, b'note: run with `RUST_BACKTRACE=1` to display a backtrace\\n')\n"
        "    with _panic_messages_hidden():\n"
        "        os.write(2, b'nested\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stderr == "from another thread\nnested\nafter\n"
