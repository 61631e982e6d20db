"""squeezenli: natural language inference with SqueezeBERT-MNLI on onnxruntime.

The Python API under the command line; importing it loads nothing heavy.

    from squeezenli import load_model
    nli = load_model()
    [p.label for p in nli.predict([("A man plays a guitar.", "A person makes music.")])]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the module that defines it; imported on first use.
_EXPORTS = {
    "load_model": "runtime.model",
    "prepare_model": "runtime.model",
    "NLIModel": "runtime.model",
    "Prediction": "runtime.prediction",
    "classify": "tasks.zeroshot",
    "ZeroShot": "tasks.results",
    "evaluate": "tasks.evaluation",
    "Report": "tasks.evaluation",
    "read_records": "records.readers",
    "Record": "records.readers",
    "RowError": "records.readers",
    "score_records": "tasks.scoring",
    "Result": "tasks.results",
    "LongInput": "choices",
    "Aggregate": "choices",
    "Precision": "choices",
    "OnError": "choices",
    "Decision": "tasks.zeroshot",
    "check_records": "tasks.claims",
    "Check": "tasks.claims",
    "Claim": "tasks.claims",
    "ModelSpec": "runtime.spec",
    "PairOptions": "tasks.options",
    "ZeroShotOptions": "tasks.options",
    "CheckOptions": "tasks.options",
    "SqueezenliError": "errors",
    "InputError": "errors",
}
__all__ = [
    "load_model",
    "prepare_model",
    "NLIModel",
    "Prediction",
    "classify",
    "ZeroShot",
    "evaluate",
    "Report",
    "read_records",
    "Record",
    "RowError",
    "score_records",
    "Result",
    "LongInput",
    "Aggregate",
    "Precision",
    "OnError",
    "Decision",
    "check_records",
    "Check",
    "Claim",
    "ModelSpec",
    "PairOptions",
    "ZeroShotOptions",
    "CheckOptions",
    "SqueezenliError",
    "InputError",
    "__version__",
]

if TYPE_CHECKING:  # what the lazy imports below give, for type checkers and editors
    from squeezenli.choices import Aggregate, LongInput, OnError, Precision
    from squeezenli.errors import InputError, SqueezenliError
    from squeezenli.records.readers import Record, RowError, read_records
    from squeezenli.runtime.model import NLIModel, load_model, prepare_model
    from squeezenli.runtime.prediction import Prediction
    from squeezenli.runtime.spec import ModelSpec
    from squeezenli.tasks.claims import Check, Claim, check_records
    from squeezenli.tasks.evaluation import Report, evaluate
    from squeezenli.tasks.options import CheckOptions, PairOptions, ZeroShotOptions
    from squeezenli.tasks.results import Result, ZeroShot
    from squeezenli.tasks.scoring import score_records
    from squeezenli.tasks.zeroshot import Decision, classify


def __getattr__(name: str):
    # Lazy, so `import squeezenli` (and the CLI's start-up) stays cheap.
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'squeezenli' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names too, so dir() and editors list the public API.
    return sorted(set(globals()) | set(__all__))
