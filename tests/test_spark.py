"""The Spark example of docs/ray.md, run as written on a local Spark: its pandas UDF downloads the
default model through huggingface_hub (from a hub-like server on 127.0.0.1), builds it in the
workers' cache, and scores every row as load_model does. Runs when pyspark and Java are
installed (pip install -e '.[test,spark]')."""

from __future__ import annotations

import shutil
import sys

import pytest
from hubserver import HubServer, Repo, folder_files
from manual import page

from squeezenli import load_model
from squeezenli.models.hub import DEFAULT_MODEL, DEFAULT_REVISION
from squeezenli.models.labels import KNOWN_ORDERS

pytest.importorskip("pyspark")
pytest.importorskip("pyarrow")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java", allow_module_level=True)


def _readme_example() -> str:
    """The first Python block after the Spark paragraph of docs/ray.md."""
    text = page("ray.md")
    after = text[text.index("Spark users can call") :]
    return after.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_spark_example_scores_as_load_model_does(tiny_model, tmp_path):
    from pyspark.sql import SparkSession

    pairs = [
        (f"A man plays a guitar {i} times.", "A person makes music." * (i % 3)) for i in range(30)
    ]
    with HubServer() as server:
        # At the pinned commit; the tiny model's config names only LABEL_0..2, as the real one's.
        server.repos[DEFAULT_MODEL] = Repo(commits={DEFAULT_REVISION: folder_files(tiny_model)})
        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.pyspark.python", sys.executable)
            .config("spark.executorEnv.HF_ENDPOINT", server.endpoint)
            .config("spark.executorEnv.HF_HOME", str(tmp_path / "hf-home"))
            .getOrCreate()
        )
        try:
            # One partition: one pandas batch, batched by the engine as a local predict is.
            namespace = {"df": spark.createDataFrame(pairs, ["premise", "hypothesis"]).coalesce(1)}
            exec(_readme_example(), namespace)
            rows = [row.asDict(recursive=True) for row in namespace["scored"].collect()]
        finally:
            spark.stop()
        downloads = [p for m, p in server.requests if m == "GET" and p.endswith(".safetensors")]

    assert len(downloads) == 1  # once per node, not per batch
    assert (tmp_path / "hf-home" / "hub").is_dir()
    order = KNOWN_ORDERS[DEFAULT_MODEL][0]
    expected = load_model(str(tiny_model), label_order=order, progress=False).predict(pairs)
    assert [(r["premise"], r["hypothesis"]) for r in rows] == pairs
    assert [r["nli"] for r in rows] == [{"prediction": p.label, **p.scores} for p in expected]
