"""How the library's parameter names read on the command line."""

from __future__ import annotations

import re

# The library names its parameters in `backticks`; on the command line they are flags.
FLAGS = {
    "label_order": "--label-order",
    "max_length": "--max-length",
    "labels": "--labels",
    "template": "--template",
    "multi_label": "--multi-label",
    "label_field": "--label-field",
    "text_field": "--text-field",
    "premise_field": "--premise-field",
    "delimiter": "--delimiter",
    "hypothesis_field": "--hypothesis-field",
    "encoding": "--encoding",
    "batch_size": "--batch-size",
    "batch_tokens": "--batch-tokens",
    "precision": "--precision",
    "onnx_file": "--onnx-file",
    "support": "--support",
    "contradict": "--contradict",
    "aggregate": "--aggregate",
    "source_field": "--source-field",
    "threshold": "--threshold",
    "top_k": "--top-k",
    "none_label": "--none-label",
    "hypotheses": "--hypotheses",
    "labels_field": "--labels-field",
    "output_fields": "--output-fields",
    "prefix": "--prefix",
    "on_error": "--on-error",
    "long_input": "--long-input",
    "row_score": "--score",
    "server": "--server",
}


def in_flags(message: str) -> str:
    """A library message with its `parameter` names written as the flags that set them."""
    return re.sub(r"`(\w+)`", lambda m: FLAGS.get(m[1], m[0]), message)
