"""Faithful answers: a pair's scores never depend on its batch, int8 runs only where it is
measured to agree, the label order comes from evidence, tokens equal the reference's, and the
build served is the one made from the files asked for."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tinymodel import random_tensors, tiny_config, vocabulary, write_tiny_model

from squeezenli.models import int8_kernels
from squeezenli.models.build import build_key, ensure_onnx, ready_path
from squeezenli.models.hub import resolve
from squeezenli.models.labels import KNOWN_ORDERS, MEASURED, resolve_labels
from squeezenli.runtime.labelcheck import check_pairs
from squeezenli.runtime.model import load_model, prepare_model
from squeezenli.runtime.spec import ModelSpec
from squeezenli.runtime.tokenizer import PairTokenizer

PAIRS = [
    ("A man plays a guitar on stage.", "A person is making music."),
    ("The dog runs in the park.", "A cat sits."),
    ("a", "b"),
    ("The old woman reads a book in the morning, and then she walks to the river.", "No."),
    ("Some people eat food.", "Nobody eats anything at all today or yesterday."),
    ("The team won the match in extra time.", "The team lost."),
]


def _variant(folder: Path, *, scale: float = 1.0, bias=(0.0, 0.0, 0.0), **config) -> Path:
    """The tiny model with its classifier scaled and shifted (and config overrides)."""
    write_tiny_model(folder, config_overrides=config or None)
    tensors = random_tensors(json.loads((folder / "config.json").read_text()))
    tensors["classifier.weight"] *= scale
    tensors["classifier.bias"] = np.array(bias, np.float32)
    from safetensors.numpy import save_file

    save_file(tensors, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_a_pairs_scores_do_not_depend_on_its_batch(tiny_model, precision):
    batched = load_model(str(tiny_model), precision=precision)
    together = batched.probabilities(PAIRS)
    alone = np.concatenate([batched.probabilities([pair]) for pair in PAIRS])
    reversed_order = batched.probabilities(PAIRS[::-1])[::-1]
    small = load_model(str(tiny_model), precision=precision, batch_size=2, batch_tokens=40)
    mixed = small.probabilities(PAIRS[3:] + PAIRS[:3])
    mixed = np.concatenate([mixed[3:], mixed[:3]])
    for other in (alone, reversed_order, mixed):
        np.testing.assert_allclose(other, together, atol=1e-4, rtol=0)
        assert (other.argmax(axis=1) == together.argmax(axis=1)).all()


def _timed_as(monkeypatch, speedup: float) -> list[str]:
    """Time int8 as `speedup` times faster than fp32 (tests never depend on how fast this
    machine is); the CPUs it was asked to time on are listed."""
    from squeezenli.runtime import precision

    timed: list[str] = []

    def fake(engines, pairs):
        timed.append(int8_kernels.cpu_name())
        speed = precision.Speed(int8_kernels.cpu_name(), len(pairs), speedup, 1.0, 100.0, 100.0)
        return speed, {p: engine.logits(pairs) for p, engine in engines.items()}

    monkeypatch.setattr(precision, "_time", fake)
    return timed


def _auto(folder: Path):
    """auto once int8 is measured (model download measures it), as later runs see it."""
    prepare_model(str(folder), measure=True)
    return load_model(str(folder))


def test_auto_answers_in_fp32_until_int8_is_measured(tmp_path, monkeypatch):
    """A first run measures nothing (no quantizing, no timing in front of its answer)."""
    from squeezenli.runtime import precision

    monkeypatch.setattr(precision, "_time", lambda *args: pytest.fail("timed on a first run"))
    folder = _variant(tmp_path / "sure", scale=0.1, bias=(6, 0, 0))
    first = load_model(str(folder))
    assert first.requested_precision == "auto" and first.precision == "fp32"
    assert first.agreement is None and first.speed is None
    exact = load_model(str(folder), precision="fp32")
    np.testing.assert_array_equal(
        first.logits([("A man.", "A man.")]), exact.logits([("A man.", "A man.")])
    )


def test_auto_runs_int8_only_where_it_agrees(tmp_path, caplog, monkeypatch):
    _timed_as(monkeypatch, 2.0)
    sure = _auto(_variant(tmp_path / "sure", scale=0.1, bias=(6, 0, 0)))
    assert sure.requested_precision == "auto" and sure.precision == "int8"
    assert sure.agreement is not None and sure.agreement.passes
    assert sure.agreement.pairs >= 256
    with caplog.at_level(logging.WARNING, logger="squeezenli"):
        sharp = _auto(_variant(tmp_path / "sharp", scale=40))
    assert sharp.precision == "fp32"
    assert sharp.agreement is not None and not sharp.agreement.passes
    assert sharp.agreement.max_difference > 0.05
    assert "using fp32" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="squeezenli"):
        forced = load_model(str(tmp_path / "sharp"), precision="int8")
    assert forced.precision == "int8" and "int8 may change answers" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="squeezenli"):
        load_model(str(tmp_path / "sharp"))  # the choice is stored: said once, at build
    assert "using fp32" not in caplog.text


def test_auto_keeps_fp32_where_int8_is_not_faster_on_this_cpu(tmp_path, caplog, monkeypatch):
    from squeezenli.runtime.precision import MIN_SPEEDUP

    _timed_as(monkeypatch, MIN_SPEEDUP * 0.9)
    folder = _variant(tmp_path / "sure", scale=0.1, bias=(6, 0, 0))
    with caplog.at_level(logging.WARNING, logger="squeezenli"):
        slow = _auto(folder)
    assert slow.agreement is not None and slow.agreement.passes
    assert slow.precision == "fp32" and "using fp32" in caplog.text
    assert f"auto needs {MIN_SPEEDUP}x" in caplog.text
    assert load_model(str(folder), precision="int8").precision == "int8"  # still when asked


def test_speed_is_timed_once_per_kind_of_cpu_and_agreement_once_per_build(
    tmp_path, monkeypatch, cpu_kind
):
    from squeezenli.runtime import precision

    timed = _timed_as(monkeypatch, 2.0)
    folder = _variant(tmp_path / "sure", scale=0.1, bias=(6, 0, 0))
    _auto(folder)
    _auto(folder)
    assert len(timed) == 1 and cpu_kind.replace("-", " ").upper() in timed[0].upper()
    agreement = load_model(str(folder)).agreement
    monkeypatch.setattr(int8_kernels, "CPUINFO", tmp_path / "other-cpuinfo")
    (tmp_path / "other-cpuinfo").write_text("model name\t: Another CPU\nflags\t: avx2\n")
    int8_kernels.cpu_name.cache_clear()
    monkeypatch.setattr(precision, "_agreement", lambda *args: pytest.fail("measured"))
    assert load_model(str(folder)).agreement == agreement  # not timed here: fp32 until then
    assert len(timed) == 1
    assert _auto(folder).agreement == agreement  # agreement is the build's
    assert len(timed) == 2 and "Another CPU" in timed[1]  # speed is the CPU's


def test_speed_is_timed_on_the_calibration_pairs(tiny_model, tmp_path):
    """The real timing: both precisions over every calibration pair, CPU and wall time."""
    from squeezenli.runtime.precision import calibration_pairs, stored_speed

    folder = tmp_path / "copy"
    shutil.copytree(tiny_model, folder)
    nli = load_model(str(folder), precision="int8")
    speed = stored_speed(resolve(str(folder)))
    assert speed is not None and speed == nli.speed
    assert speed.pairs == len(calibration_pairs()) and speed.cpu == int8_kernels.cpu_name()
    assert speed.fp32_cpu_s > 0 and speed.int8_cpu_s > 0
    assert speed.fp32_pairs_per_s > 0 and speed.int8_pairs_per_s > 0
    assert speed.speedup == speed.fp32_cpu_s / speed.int8_cpu_s


def test_model_info_shows_the_measurements(tmp_path, monkeypatch):
    from squeezenli.runtime.info import model_info

    _timed_as(monkeypatch, 2.0)
    folder = _variant(tmp_path / "sure", scale=0.1, bias=(6, 0, 0))
    before = model_info(ModelSpec(str(folder)))
    assert before["int8_agreement"] is None and before["int8_speed"] is None
    _auto(folder)
    info = model_info(ModelSpec(str(folder)))
    agreement = info["int8_agreement"]
    assert agreement["passes"] and agreement["label_agreement"] == 1.0
    assert set(agreement) >= {"pairs", "max_difference", "mean_difference"}
    speed = info["int8_speed"]
    assert speed["speedup"] == 2.0 and speed["pays"] and speed["cpu"] == int8_kernels.cpu_name()
    assert info["label_check"]["wins"].keys() == {"entailment", "neutral", "contradiction"}


def _fitted(folder: Path, order: tuple[str, ...]) -> Path:
    """A tiny model whose classifier is fitted so the check pairs of each class win on the
    index `order` gives that class."""
    hidden = tiny_config()["hidden_size"]
    wide = {
        "num_labels": hidden,
        "id2label": {str(i): f"LABEL_{i}" for i in range(hidden)},
        "label2id": {f"LABEL_{i}": i for i in range(hidden)},
    }
    probe = write_tiny_model(folder.with_name(folder.name + "-probe"), config_overrides=wide)
    tensors = random_tensors(tiny_config())
    tensors["classifier.weight"] = np.eye(hidden, dtype=np.float32)  # logits = pooled output
    tensors["classifier.bias"] = np.zeros(hidden, np.float32)
    from safetensors.numpy import save_file

    save_file(tensors, str(probe / "model.safetensors"))
    pairs = check_pairs()
    pooled = load_model(str(probe), precision="fp32").logits(
        [(p["premise"], p["hypothesis"]) for p in pairs]
    )
    targets = np.full((len(pairs), 3), -4.0)
    for row, pair in enumerate(pairs):
        targets[row, order.index(pair["label"])] = 4.0
    mean, spread = pooled.mean(axis=0), pooled.std(axis=0) + 1e-6
    z = (pooled - mean) / spread  # ridge regression on standardized features
    weight = np.linalg.solve(z.T @ z + 0.1 * np.eye(hidden), z.T @ targets) / spread[:, None]
    tensors["classifier.weight"] = np.ascontiguousarray(weight.T, np.float32)
    tensors["classifier.bias"] = (targets.mean(axis=0) - mean @ weight).astype(np.float32)
    write_tiny_model(folder)
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def test_the_label_order_is_measured_when_the_config_names_none(tmp_path):
    order = ("neutral", "contradiction", "entailment")
    folder = _fitted(tmp_path / "fitted", order)
    nli = load_model(str(folder), precision="fp32")
    assert nli.labels.names == order and nli.labels.source == MEASURED
    again = load_model(str(folder), precision="int8")  # measured once, on the fp32 build
    assert again.labels.names == order
    chosen = load_model(str(folder), precision="fp32", label_order="a,b,c")
    assert chosen.labels.names == ("a", "b", "c")


def test_an_inconclusive_measurement_is_ignored(tiny_model):
    from squeezenli.runtime.info import model_info

    nli = load_model(str(tiny_model), precision="fp32")
    assert model_info(ModelSpec(str(tiny_model)))["label_check"]["observed_order"] is None
    assert nli.labels.names == ("LABEL_0", "LABEL_1", "LABEL_2")
    assert nli.labels.source != MEASURED


def test_a_measurement_that_contradicts_the_known_table_wins_with_a_warning(caplog):
    repo = "squeezebert/squeezebert-mnli"
    known = KNOWN_ORDERS[repo][0]
    measured = known[::-1]
    generic = {i: f"LABEL_{i}" for i in range(3)}
    with caplog.at_level(logging.WARNING, logger="squeezenli"):
        labels = resolve_labels(generic, repo, None, measured)
    assert labels.names == measured and labels.source == MEASURED
    assert ",".join(measured) in caplog.text and ",".join(known) in caplog.text
    assert resolve_labels(generic, repo, None, None).names == known


def test_special_tokens_typed_as_text_are_the_special_tokens(tiny_model):
    vocab = vocabulary()
    tokenizer = PairTokenizer.from_files(
        tokenizer_json=None,
        vocab=tiny_model / "vocab.txt",
        tokenizer_config=tiny_model / "tokenizer_config.json",
        max_length=48,
    )
    [encoded] = tokenizer.encode([("guitar [SEP] man [MASK]", "[CLS] dog [PAD][UNK]")])
    cls, sep, mask, pad, unk = (
        vocab.index(t) for t in ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]")
    )
    guitar, man, dog = (vocab.index(w) for w in ("guitar", "man", "dog"))
    assert encoded.ids == [cls, guitar, sep, man, mask, sep, cls, dog, pad, unk, sep]


def test_special_tokens_and_truncation_match_transformers(tiny_model):
    transformers = pytest.importorskip("transformers")
    reference = transformers.AutoTokenizer.from_pretrained(str(tiny_model))
    tokenizer = PairTokenizer.from_files(
        tokenizer_json=None,
        vocab=tiny_model / "vocab.txt",
        tokenizer_config=tiny_model / "tokenizer_config.json",
        max_length=20,
    )
    rng = np.random.default_rng(0)
    words = vocabulary()[5:] + ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[sep]", "x[CLS]y"]
    pairs = [
        tuple(" ".join(rng.choice(words, size=rng.integers(0, 30))) for _ in range(2))
        for _ in range(300)
    ]
    ours = [e.ids for e in tokenizer.encode(pairs)]
    theirs = reference([p for p, _ in pairs], [h for _, h in pairs], truncation=True, max_length=20)
    assert ours == theirs["input_ids"]


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_two_long_sides_are_truncated_in_bounded_memory(tiny_model):
    tokenizer = PairTokenizer.from_files(
        tokenizer_json=None,
        vocab=tiny_model / "vocab.txt",
        tokenizer_config=tiny_model / "tokenizer_config.json",
        max_length=48,
    )
    premise = ("the man plays a guitar " * 45_000)[: 1 << 20]
    hypothesis = ("a dog runs in the park " * 45_000)[: 1 << 20]
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak
    before = _peak_rss_kib()
    [encoded] = tokenizer.encode([(premise, hypothesis)])
    grown_mib = (_peak_rss_kib() - before) / 1024
    assert len(encoded.ids) == 48
    # Each side is ~230k tokens; the library's pair truncation kept every pairing of their
    # overflow pieces (gigabytes). Encoding both sides once needs tens of MiB.
    assert grown_mib < 400, f"peak grew by {grown_mib:.0f} MiB"


def test_an_edited_config_gets_a_new_build(tiny_model, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model, folder)
    before = load_model(str(folder), precision="fp32")
    config = json.loads((folder / "config.json").read_text())
    config["hidden_act"] = "relu"
    (folder / "config.json").write_text(json.dumps(config))
    after = load_model(str(folder), precision="fp32")
    assert after.onnx_path != before.onnx_path
    assert np.abs(after.logits(PAIRS) - before.logits(PAIRS)).max() > 1e-3


def test_weights_replaced_with_the_same_size_and_time_get_a_new_build(tiny_model, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model, folder)
    weights = folder / "model.safetensors"
    before = load_model(str(folder), precision="fp32")
    stat = weights.stat()
    from safetensors.numpy import save_file

    save_file(random_tensors(tiny_config(), seed=5), str(weights))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size
    after = load_model(str(folder), precision="fp32")
    assert after.onnx_path != before.onnx_path
    assert np.abs(after.logits(PAIRS) - before.logits(PAIRS)).max() > 1e-3


def test_a_new_commit_with_a_new_config_and_the_same_weights_gets_a_new_build(tiny_model, tmp_path):
    files = resolve(str(tiny_model))
    other_config = tmp_path / "config.json"
    config = json.loads((tiny_model / "config.json").read_text())
    other_config.write_text(json.dumps({**config, "layer_norm_eps": 1e-5}))
    other = replace(
        files,
        source="acme/model",
        revision="1" * 40,
        folder=tmp_path,
        files={**files.files, "config.json": other_config},
    )
    assert build_key(other) != build_key(files)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_bit_flipped_build_is_detected_and_rebuilt(tiny_model, tmp_path, caplog, precision):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model, folder)
    expected = load_model(str(folder), precision=precision).logits(PAIRS)
    files = resolve(str(folder))
    built = ensure_onnx(files, precision)
    ready = ready_path(built, files.build_dir)
    for path in (built, ready.with_name(ready.name + ".data")):
        data = bytearray(path.read_bytes())
        for i in range(len(data) // 4, len(data), 97):
            data[i] ^= 0x10
        path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="squeezenli"):
        again = load_model(str(folder), precision=precision)
    assert "does not match its recorded hash" in caplog.text
    np.testing.assert_allclose(again.logits(PAIRS), expected, atol=1e-6, rtol=0)
