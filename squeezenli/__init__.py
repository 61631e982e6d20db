"""squeezenli: natural language inference with SqueezeBERT-MNLI on onnxruntime.

The Python API under the command line; importing it loads nothing heavy.

    from squeezenli import load_model
    nli = load_model()
    [p.label for p in nli.predict([("A man plays a guitar.", "A person makes music.")])]
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_model", "NLIModel", "Prediction", "SqueezenliError", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import squeezenli` (and the CLI's start-up) stays cheap.
    if name in ("load_model", "NLIModel", "Prediction"):
        from . import model

        return getattr(model, name)
    if name == "SqueezenliError":
        from .errors import SqueezenliError

        return SqueezenliError
    raise AttributeError(f"module 'squeezenli' has no attribute {name!r}")
