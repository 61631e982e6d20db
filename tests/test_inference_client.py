"""huggingface_hub's InferenceClient, unchanged, against `squeezenli serve` on 127.0.0.1:
zero-shot classification on POST / gives, label for label, what `squeezenli classify` gives
(single and multi-label, a template, a token, the async client); TEI's payload on / is
/predict's; malformed and mixed payloads are 422s naming the field."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from serving import Server

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
hub = pytest.importorskip("huggingface_hub")

TEXT = "The match went to extra time."
LABELS = ["sports", "politics", "music"]


@pytest.fixture(scope="module")
def server(tiny_nli_model):
    running = Server(tiny_nli_model, "--api-key", "s3cret")
    yield running
    assert running.stop() == 0


def _classified(model, *args: str) -> list[tuple[str, float]]:
    line = json.dumps({"text": TEXT}) + "\n"
    done = run_cli(["classify", "-m", str(model), "--precision", "fp32", *args], line)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    return list(zip(row["labels"], row["scores"]))


@pytest.mark.parametrize(
    "options, flags",
    [
        ({}, []),
        ({"multi_label": True}, ["--multi-label"]),
        (
            {"multi_label": True, "hypothesis_template": "This text is about {}."},
            ["--multi-label", "-t", "This text is about {}."],
        ),
    ],
)
def test_zero_shot_equals_classify(server, tiny_nli_model, options, flags):
    client = hub.InferenceClient(model=server.url, token="s3cret", timeout=60)
    found = client.zero_shot_classification(TEXT, candidate_labels=LABELS, **options)
    expected = _classified(tiny_nli_model, "-l", ",".join(LABELS), *flags)
    assert [(item.label, item.score) for item in found] == expected


def test_the_async_client_too(server, tiny_nli_model):
    import asyncio

    async def classify():
        client = hub.AsyncInferenceClient(model=server.url, token="s3cret", timeout=60)
        return await client.zero_shot_classification(TEXT, candidate_labels=LABELS)

    found = asyncio.run(classify())
    expected = _classified(tiny_nli_model, "-l", ",".join(LABELS))
    assert [(item.label, item.score) for item in found] == expected


def test_the_token_is_required(server):
    client = hub.InferenceClient(model=server.url, timeout=60)
    with pytest.raises(hub.errors.HfHubHTTPError, match="401"):
        client.zero_shot_classification(TEXT, candidate_labels=LABELS)


KEY = {"authorization": "Bearer s3cret"}


def test_teis_payload_on_the_root_is_predicts(server):
    pair = ["A man plays a guitar.", "A person makes music."]
    for inputs in (pair, [pair, pair[::-1]]):
        root = server.post("/", {"inputs": inputs}, headers=KEY)
        predict = server.post("/predict", {"inputs": inputs}, headers=KEY)
        assert root.status_code == 200 and root.json() == predict.json()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"inputs": TEXT}, "inputs"),  # no candidate labels: read as pairs, and no pair
        ({"inputs": TEXT, "parameters": {"multi_label": True}}, "parameters.candidate_labels"),
        ({"inputs": TEXT, "parameters": {"candidate_labels": []}}, "parameters.candidate_labels"),
        ({"inputs": TEXT, "parameters": {"candidate_labels": ["a"], "top": 1}}, "parameters.top"),
        ({"inputs": 5, "parameters": {"candidate_labels": ["a"]}}, "inputs"),
        ({"inputs": [TEXT, 5], "parameters": {"candidate_labels": ["a"]}}, "inputs[1]"),
        ({"inputs": TEXT, "parameters": {"candidate_labels": ["a"]}, "texts": []}, "texts"),
        (
            {"inputs": TEXT, "parameters": {"candidate_labels": ["a"], "multi_label": "yes"}},
            "parameters.multi_label",
        ),
        (
            {"inputs": TEXT, "parameters": {"candidate_labels": ["a"], "hypothesis_template": "x"}},
            "parameters.hypothesis_template",
        ),
        ({"parameters": {"candidate_labels": ["a"]}}, "inputs"),
    ],
)
def test_malformed_and_mixed_payloads_name_the_field(server, body, field):
    answer = server.post("/", body, headers=KEY)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["field"] == field, answer.json()


def test_a_list_of_texts_gets_a_list_of_rankings(server, tiny_nli_model):
    body = {"inputs": [TEXT, TEXT], "parameters": {"candidate_labels": ",".join(LABELS)}}
    answer = server.post("/", body, headers=KEY)
    assert answer.status_code == 200, answer.text
    expected = _classified(tiny_nli_model, "-l", ",".join(LABELS))
    assert [[(i["label"], i["score"]) for i in one] for one in answer.json()] == [expected] * 2


def test_info_and_openapi_name_the_root_payloads(server):
    import httpx2 as httpx

    info = httpx.get(server.url + "/info", headers=KEY).json()
    assert "zero-shot" in info["routes"]["POST /"]
    document = httpx.get(server.url + "/openapi.json", headers=KEY).json()
    root = document["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]
    assert "candidate_labels" in root["schema"]["properties"]["parameters"]["properties"]
