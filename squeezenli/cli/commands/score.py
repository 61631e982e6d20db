"""`squeezenli score PREMISE HYPOTHESIS` (also `squeezenli PREMISE HYPOTHESIS`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from squeezenli.cli.options import (
    Backend,
    JsonOpt,
    ModelOptions,
    backend_options,
    model_options,
    task_options,
)
from squeezenli.tasks.options import PairOptions


@model_options(
    "model", "revision", "onnx_file", "precision", "label_order", "max_length", "threads", "quiet"
)
@task_options(
    PairOptions, "pairs", skip=("premise_field", "hypothesis_field", "threshold", "logits")
)
@backend_options(ray=False)
def score(
    premise: Annotated[str, typer.Argument(help="The premise text.")],
    hypothesis: Annotated[str, typer.Argument(help="The hypothesis to test against it.")],
    json_out: JsonOpt = False,
    *,
    opts: ModelOptions,
    pairs: PairOptions,
    backend: Backend,
) -> None:
    """Score one premise/hypothesis pair.

    Example: squeezenli score "A man plays a guitar." "A person makes music." --json
    """
    from squeezenli.records.readers import Record, RowFailure

    # With --server, neither numpy nor onnxruntime is imported: a pair costs the request.
    scorer = backend.scorer(replace(opts, spec=replace(opts.spec, batch_size=1)))
    record = Record("<arguments>", 1, {"premise": premise, "hypothesis": hypothesis})
    (result,) = scorer.results([record], pairs)
    if result.error is not None:  # --long-input fail on a long pair, a model giving NaN
        raise RowFailure(result.error)
    prediction = result.output
    assert prediction is not None
    if json_out:
        from squeezenli.cli.streams import write_json_line

        write_json_line({"premise": premise, "hypothesis": hypothesis, **prediction.fields()})
        return
    from squeezenli.cli.render import prediction_table

    prediction_table(premise, hypothesis, prediction, scorer.labels())
