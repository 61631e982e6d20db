"""What a model is and where its parts live: the facts behind `squeezenli model info`."""

from __future__ import annotations

from .build import PRECISIONS, built_path, is_export
from .config import id2label, read_config
from .hub import CONFIG, resolve
from .labels import resolve_labels


def model_info(model: str | None, revision: str | None, label_order: str | None) -> dict:
    """A JSON-ready description of a resolved model (downloads it if it is not cached)."""
    files = resolve(model, revision)
    raw = read_config(files.files[CONFIG])
    labels = resolve_labels(id2label(raw), files.source, label_order)
    if is_export(files):
        built = {"fp32": str(files.files[files.weights_name])}
    else:
        built = {p: str(built_path(files, p)) for p in PRECISIONS if built_path(files, p).exists()}
    return {
        "model": files.source,
        "revision": files.revision,
        "folder": str(files.folder),
        "model_type": raw.get("model_type"),
        "files": {name: path.stat().st_size for name, path in files.files.items()},
        "weights": files.weights_name,
        "built": built,
        "labels": {str(i): name for i, name in enumerate(labels.names)},
        "label_source": labels.source,
    }
