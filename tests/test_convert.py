"""The converter honours the config, names what is missing, and caches its builds."""

from __future__ import annotations

import json
import shutil

import pytest
from tinymodel import random_tensors, tiny_config

from squeezenli.errors import ModelError
from squeezenli.models.build import built_path, ensure_onnx, ready_path
from squeezenli.models.config import parse_config
from squeezenli.models.convert import build_model
from squeezenli.models.hub import resolve
from squeezenli.runtime.model import load_model


def test_a_missing_tensor_is_named():
    config = tiny_config()
    tensors = random_tensors(config)
    del tensors["transformer.encoder.layers.1.output.layernorm.bias"]
    with pytest.raises(ModelError, match="transformer.encoder.layers.1.output.layernorm.bias"):
        build_model(parse_config(config), tensors)


def test_extra_tensors_are_ignored():
    config = tiny_config()
    tensors = random_tensors(config)
    tensors["transformer.embeddings.position_ids"] = __import__("numpy").arange(48)
    assert build_model(parse_config(config), tensors).graph.output[0].name == "logits"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "roberta"}, "model_type 'roberta' is not supported"),
        ({"architectures": ["SqueezeBertForMaskedLM"]}, "not a sequence classifier"),
        ({"hidden_act": "swish"}, "hidden_act 'swish'"),
        ({"num_attention_heads": 5}, "multiple of num_attention_heads"),
    ],
)
def test_unsupported_models_are_refused(change, message):
    with pytest.raises(ModelError, match=message):
        parse_config({**tiny_config(), **change})


def test_a_wrong_model_type_is_a_clear_error_from_the_cli_path(tiny_model, tmp_path):
    folder = tmp_path / "roberta"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ModelError, match="not supported"):
        load_model(str(folder))


def test_builds_are_cached_and_leave_no_temporary_files(tiny_model):
    files = resolve(str(tiny_model))
    first = ensure_onnx(files, "fp32")
    stamp = first.stat().st_mtime_ns
    assert ensure_onnx(files, "fp32") == first == built_path(files, "fp32")
    assert first.stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.iterdir() if p.name.endswith(".tmp")]


def test_the_same_weights_keep_their_build(tiny_model, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model, folder)
    before = built_path(resolve(str(folder)), "fp32")
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    assert built_path(resolve(str(folder)), "fp32") == before  # keyed by content, not time


def test_an_onnx_export_is_used_as_it_is(tiny_model, tmp_path, golden):
    import numpy as np
    import onnx

    built = ensure_onnx(resolve(str(tiny_model)), "fp32")
    folder = tmp_path / "export"
    (folder / "onnx").mkdir(parents=True)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(tiny_model / name, folder / name)
    # One file, as exports of small models come (a build keeps its weights in a side file).
    onnx.save_model(onnx.load(str(built)), str(folder / "onnx" / "model.onnx"))
    nli = load_model(str(folder), precision="fp32")
    export = folder / "onnx" / "model.onnx"
    assert nli.onnx_path == ready_path(export, resolve(str(folder)).build_dir)
    assert export.is_file()  # a download or a user's file: never removed
    pairs = [tuple(p) for p in golden["pairs"]]
    np.testing.assert_allclose(nli.logits(pairs), golden["cases"][0]["logits"], atol=1e-4, rtol=0)


def test_an_onnx_file_without_logits_is_refused(tmp_path, tiny_model):
    from onnx import TensorProto, helper, save_model

    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["last_hidden_state"], to=TensorProto.FLOAT)],
        "features",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "l"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "l"])],
    )
    folder = tmp_path / "features"
    folder.mkdir()
    for name in ("config.json", "vocab.txt"):
        shutil.copy(tiny_model / name, folder / name)
    save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx"
    )
    with pytest.raises(ModelError, match="not an ONNX sequence classifier"):
        load_model(str(folder))


def test_roberta_positions_start_after_the_padding_index():
    from squeezenli.models.config import max_positions

    roberta = {"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    assert max_positions(roberta, "config.json") == 512
    assert max_positions({**roberta, "model_type": "bert"}, "config.json") == 514
    assert max_positions({**roberta, "pad_token_id": 0}, "config.json") == 513
    with pytest.raises(ModelError, match="pad_token_id must be an integer from 0 to 512"):
        max_positions({**roberta, "pad_token_id": 513}, "config.json")
