"""Every popular NLI layout on the Hub, served file for file by the hub-like server: which
files are fetched, and the answers against transformers (tests/make_exports.py wrote the
stand-ins and their golden values; no torch here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import one_error, squeezenli
from hubserver import HubServer, folder_files
from tinymodel import name_labels, write_tiny_model

from squeezenli.runtime.model import load_model

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
GOLDEN = json.loads((EXPORTS / "golden.json").read_text())
TOLERANCE = 1e-4
NEVER = b"never fetched"
PAIR = ["A man plays a guitar on stage.", "A person is making music."]


def _quantized(model: bytes, tmp: Path) -> bytes:
    """onnxruntime's own dynamic int8 of an export: what repos ship as model_quantized.onnx."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    (tmp / "in.onnx").write_bytes(model)
    quantize_dynamic(tmp / "in.onnx", tmp / "out.onnx", weight_type=QuantType.QInt8)
    return (tmp / "out.onnx").read_bytes()


def _external(model: bytes, tmp: Path) -> dict[str, bytes]:
    """The export saved as one over 2 GB is: its tensors in onnx/model.onnx_data."""
    proto = onnx.load_from_string(model)
    onnx.save_model(
        proto,
        str(tmp / "model.onnx"),
        save_as_external_data=True,
        location="model.onnx_data",
        size_threshold=0,
    )
    return {
        "onnx/model.onnx": (tmp / "model.onnx").read_bytes(),
        "onnx/model.onnx_data": (tmp / "model.onnx_data").read_bytes(),
    }


def _family(name: str) -> dict[str, bytes]:
    return folder_files(EXPORTS / name)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, tuple[str, dict[str, bytes]]]:
    """repo id -> (stand-in family, its files), laid out as the real repos are."""
    tmp = tmp_path_factory.mktemp("layouts")
    roberta, deberta = _family("roberta"), _family("deberta-v3")
    weights = {"model.safetensors": NEVER, "pytorch_model.bin": NEVER, "README.md": NEVER}
    variants = {
        f"onnx/model_{kind}.onnx": NEVER for kind in ("O1", "O2", "O3", "O4", "qint8_arm64")
    }
    typeform = name_labels(
        write_tiny_model(tmp / "typeform"), ("CONTRADICTION", "ENTAILMENT", "NEUTRAL")
    )
    bart = {**folder_files(typeform), "config.json": json.dumps({"model_type": "bart"}).encode()}
    return {
        "cross-encoder/nli-roberta-base": (
            "roberta",
            {
                **roberta,
                **weights,
                **variants,
                "onnx/model_quantized.onnx": _quantized(roberta["onnx/model.onnx"], tmp),
            },
        ),
        "cross-encoder/nli-deberta-v3-xsmall": (
            "deberta-v3",
            {
                **deberta,
                **weights,
                **variants,
                "onnx/model_qint8_avx512_vnni.onnx": _quantized(deberta["onnx/model.onnx"], tmp),
            },
        ),
        "MoritzLaurer/deberta-v3-base-zeroshot-v2.0": (
            "deberta-v3-2class",
            {**_family("deberta-v3-2class"), **weights},
        ),
        "Xenova/distilbert-base-uncased-mnli": (
            "distilbert",
            {**_family("distilbert"), "onnx/model_quantized.onnx": NEVER},
        ),
        "Xenova/bart-large-mnli": (
            "bart",
            {**_family("bart"), "onnx/model_quantized.onnx": NEVER, "onnx/model_fp16.onnx": NEVER},
        ),
        "acme/roberta-external-data": (
            "roberta",
            {
                **roberta,
                **weights,
                **_external(roberta["onnx/model.onnx"], tmp),
                "onnx/model.onnx_data.old": NEVER,  # listed, referenced by no tensor
            },
        ),
        "typeform/squeezebert-mnli": ("", {**folder_files(typeform), "onnx/model.onnx": NEVER}),
        "facebook/bart-large-mnli": ("", bart),
    }


@pytest.fixture()
def hub(layouts, tmp_path):
    with HubServer() as server:
        for repo, (_, files) in layouts.items():
            server.add_repo(repo, files)
        server.home = str(tmp_path / "hf-home")
        yield server


def _run(hub: HubServer, *args: str, **env: str):
    return squeezenli(*args, HF_HOME=hub.home, HF_ENDPOINT=hub.endpoint, **env)


def _fetched(hub: HubServer, repo: str) -> set[str]:
    prefix = f"/{repo}/resolve/"
    return {
        path.split("/resolve/", 1)[1].split("/", 1)[1]
        for method, path in hub.requests
        if method == "GET" and path.startswith(prefix)
    }


def _softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


EXPORT_REPOS = {
    "cross-encoder/nli-roberta-base": "onnx/model.onnx",
    "cross-encoder/nli-deberta-v3-xsmall": "onnx/model.onnx",
    "MoritzLaurer/deberta-v3-base-zeroshot-v2.0": "onnx/model.onnx",
    "Xenova/distilbert-base-uncased-mnli": "onnx/model.onnx",
    "Xenova/bart-large-mnli": "onnx/model.onnx",
    "acme/roberta-external-data": "onnx/model.onnx",
}


@pytest.mark.parametrize("case", [0, 1], ids=["model-limit", "max-length-16"])
@pytest.mark.parametrize("repo", list(EXPORT_REPOS))
def test_each_layout_scores_as_transformers_does(hub, layouts, tmp_path, repo, case):
    family = layouts[repo][0]
    golden = GOLDEN[family]
    expected = golden["cases"][case]
    kept = [i for i, (p, h) in enumerate(golden["pairs"]) if p and h]  # batch refuses ""
    source = tmp_path / "pairs.jsonl"
    source.write_text(
        "".join(
            json.dumps(dict(zip(("premise", "hypothesis"), golden["pairs"][i]))) + "\n"
            for i in kept
        )
    )
    args = ["batch", str(source), "-m", repo, "--precision", "fp32", "--batch-size", "3"]
    if expected["max_length"]:
        args += ["--max-length", str(expected["max_length"])]
    done = _run(hub, *args)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    names = _labels(family)
    got = np.array([[row["scores"][name] for name in names] for row in rows])
    want = _softmax(expected["logits"])[kept]
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
    fetched = _fetched(hub, repo)
    assert EXPORT_REPOS[repo] in fetched
    assert not {name for name in fetched if layouts[repo][1][name] == NEVER}
    if repo == "acme/roberta-external-data":
        assert "onnx/model.onnx_data" in fetched


def _labels(family: str) -> list[str]:
    """The stand-in's output names in index order, as squeezenli writes them."""
    config = json.loads((EXPORTS / family / "config.json").read_text())
    return [config["id2label"][str(i)].lower() for i in range(len(config["id2label"]))]


@pytest.mark.parametrize("family", sorted(GOLDEN))
def test_truncation_and_pair_templates_give_transformers_ids(family):
    """<s> A </s></s> B </s> (RoBERTa), [CLS] A [SEP] B [SEP] (DeBERTa-v3, DistilBERT),
    longest-first at max_length and at the model's own limit (RoBERTa: 66 positions, pad 1:
    64 tokens; the tokenizer_config's 1e30 placeholder ignored)."""
    golden = GOLDEN[family]
    for case in golden["cases"]:
        nli = load_model(str(EXPORTS / family), precision="fp32", max_length=case["max_length"])
        encoded = nli.engine.tokenizer.encode([tuple(p) for p in golden["pairs"]])
        assert [e.ids for e in encoded] == case["input_ids"]  # type: ignore[union-attr]
        if case["max_length"] is None:  # the long pair fills the model's own limit
            assert nli.max_length == len(case["input_ids"][-1]) == 64


@pytest.mark.parametrize(
    "repo",
    [
        "cross-encoder/nli-deberta-v3-xsmall",
        "MoritzLaurer/deberta-v3-base-zeroshot-v2.0",
        "Xenova/bart-large-mnli",
    ],
)
def test_zero_shot_matches_the_pipeline(hub, layouts, repo):
    for case in GOLDEN[layouts[repo][0]]["zero_shot"]:
        args = ["classify", *case["texts"], "--labels", ",".join(case["labels"])]
        args += ["--template", case["template"], "-m", repo, "--json", "--precision", "fp32"]
        done = _run(hub, *args, *(["--multi-label"] if case["multi_label"] else []))
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        for ours, theirs in zip(rows, case["expected"], strict=True):
            assert ours["labels"] == theirs["labels"]
            np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=TOLERANCE, rtol=0)


def test_a_typeform_style_repo_converts_its_weights_with_upper_case_names(hub):
    done = _run(hub, *PAIR, "-m", "typeform/squeezebert-mnli", "--json", "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["scores"]) == {"entailment", "neutral", "contradiction"}
    assert "model.safetensors" in _fetched(hub, "typeform/squeezebert-mnli")
    assert "onnx/model.onnx" not in _fetched(hub, "typeform/squeezebert-mnli")


def test_a_model_without_an_export_is_refused_naming_what_was_looked_for(hub):
    line = one_error(_run(hub, *PAIR, "-m", "facebook/bart-large-mnli"))
    assert "model_type 'bart' is not supported for conversion" in line
    assert "onnx/model.onnx, model.onnx" in line
    assert _fetched(hub, "facebook/bart-large-mnli") == {"config.json"}


def test_a_shipped_variant_runs_measured_against_the_fp32_export(hub):
    repo, variant = "cross-encoder/nli-roberta-base", "onnx/model_quantized.onnx"
    done = _run(hub, *PAIR, "-m", repo, "--onnx-file", variant, "--json", "--precision", "int8")
    assert done.returncode == 0, done.stderr
    assert _fetched(hub, repo) >= {variant, "onnx/model.onnx"}
    assert not {n for n in _fetched(hub, repo) if n.endswith(("O1.onnx", ".safetensors"))}
    info = json.loads(
        _run(hub, "model", "info", "-m", repo, "--onnx-file", variant, "--json").stdout
    )
    assert info["weights"] == variant and info["measured_against"] == "onnx/model.onnx"
    assert info["built"]["fp32"].endswith("onnx/model.onnx")  # measured against, never run
    assert "-export.ort" in info["built"]["int8"]  # the ready copy of the variant, what runs
    assert "onnx/model_O3.onnx" in info["onnx_files"]
    agreement = info["int8_agreement"]
    assert agreement["pairs"] == 512 and 0 <= agreement["max_difference"] < 1
    # onnxruntime's dynamic int8 gives a whole batch one scale: a pair's scores move with it.
    assert agreement["batch_difference"] > 1e-4 and not agreement["passes"]
    fp32 = _run(hub, *PAIR, "-m", repo, "--onnx-file", variant, "--json", "--precision", "fp32")
    plain = _run(hub, *PAIR, "-m", repo, "--json", "--precision", "fp32")
    assert fp32.returncode == 0 and fp32.stdout == plain.stdout  # fp32 is the repo's export
    auto = _run(hub, *PAIR, "-m", repo, "--onnx-file", variant, "--json")
    assert auto.returncode == 0 and auto.stdout == plain.stdout  # it failed: the export runs
    assert "its scores depend on the batch" in auto.stderr
    assert "; using onnx/model.onnx" in auto.stderr


@pytest.mark.parametrize("family", ["roberta", "deberta-v3", "bart"])
def test_squeezenli_int8_of_an_export_does_not_depend_on_the_batch(family):
    agreement = load_model(str(EXPORTS / family), precision="int8").agreement
    assert agreement is not None and agreement.batch_difference == 0.0


def test_an_onnx_file_the_repo_lacks_is_refused_listing_what_it_has(hub):
    repo = "Xenova/distilbert-base-uncased-mnli"
    line = one_error(_run(hub, *PAIR, "-m", repo, "--onnx-file", "onnx/model_fp16.onnx"))
    assert "--onnx-file 'onnx/model_fp16.onnx' is not among its ONNX files" in line
    assert "onnx/model.onnx, onnx/model_quantized.onnx" in line


@pytest.mark.parametrize("name", ["../model.onnx", "/etc/model.onnx", "onnx/../../x.onnx"])
def test_an_onnx_file_outside_the_model_is_refused(tmp_path, name):
    from squeezenli.errors import ModelError

    folder = tmp_path / "model"
    folder.mkdir()
    for part in ("config.json", "tokenizer.json", "onnx/model.onnx"):
        (folder / part).parent.mkdir(exist_ok=True)
        (folder / part).write_bytes((EXPORTS / "roberta" / part).read_bytes())
    (tmp_path / "model.onnx").write_bytes((EXPORTS / "roberta" / "onnx/model.onnx").read_bytes())
    with pytest.raises(ModelError, match="is not among its ONNX files"):
        load_model(str(folder), onnx_file=name)


def test_an_export_is_used_offline_from_the_cache(hub):
    repo = "cross-encoder/nli-deberta-v3-xsmall"
    first = _run(hub, *PAIR, "-m", repo, "--json")
    assert first.returncode == 0, first.stderr
    hub.requests.clear()
    again = _run(hub, *PAIR, "-m", repo, "--json", HF_HUB_OFFLINE="1")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and hub.requests == []


def test_a_length_past_the_roberta_position_table_is_refused(hub):
    repo = "cross-encoder/nli-roberta-base"
    line = one_error(_run(hub, *PAIR, "-m", repo, "--max-length", "65"), code=2)
    assert "--max-length 65 exceeds the model's 64 positions" in line


def test_an_onnxruntime_failure_is_one_line_without_its_log(tmp_path):
    """A config that claims a longer position table than its export holds: onnxruntime
    fails inside the graph, and says so on stderr in a log of its own unless told not to."""
    folder = tmp_path / "model"
    (folder / "onnx").mkdir(parents=True)
    for part in ("config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"):
        (folder / part).write_bytes((EXPORTS / "roberta" / part).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 130}))
    long = " ".join(["music"] * 100)
    args = ("--json", "-m", str(folder), "--precision", "fp32", "--", long, "A man.")
    done = squeezenli(*args, HF_HOME=str(tmp_path / "hf"))
    line = one_error(done)
    assert done.stderr.strip().splitlines() == [line]  # no log of onnxruntime's own
    assert "GatherElements node '/model/roberta/embeddings/GatherElements'" in line
    assert "a smaller --max-length keeps positions inside the table" in line
    assert "onnxruntime_src" not in line


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, precision):
    """An export's tensors may live in other files; one that names a file outside its folder
    (../../etc/hostname) is refused by onnx and onnxruntime alike, nothing read."""
    folder = tmp_path / "model"
    (folder / "onnx").mkdir(parents=True)
    for part in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / part).write_bytes((EXPORTS / "roberta" / part).read_bytes())
    files = _external((EXPORTS / "roberta" / "onnx" / "model.onnx").read_bytes(), tmp_path)
    proto = onnx.load_from_string(files["onnx/model.onnx"])
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../etc/hostname"
    onnx.save_model(proto, str(folder / "onnx" / "model.onnx"))
    (folder / "onnx" / "model.onnx_data").write_bytes(files["onnx/model.onnx_data"])
    args = ("-m", str(folder), "--precision", precision, *PAIR)
    line = one_error(squeezenli(*args, HF_HOME=str(tmp_path / "hf")))
    assert "../../etc/hostname" in line


def test_a_two_class_export_in_batch_and_eval(hub, tmp_path):
    repo = "MoritzLaurer/deberta-v3-base-zeroshot-v2.0"
    gold = tmp_path / "gold.jsonl"
    rows = [("A man plays.", "A man plays.", "entailment"), ("A dog.", "A cat.", "contradiction")]
    gold.write_text(
        "".join(json.dumps(dict(zip(("premise", "hypothesis", "label"), r))) + "\n" for r in rows)
    )
    scored = _run(hub, "batch", str(gold), "-m", repo)
    assert scored.returncode == 0, scored.stderr
    assert {json.loads(line)["prediction"] for line in scored.stdout.splitlines()} <= {
        "entailment",
        "not_entailment",
    }
    evaluated = _run(hub, "eval", str(gold), "-m", repo, "--label-field", "label")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "two outputs" in evaluated.stderr
