"""What a model is and where its parts live: the facts behind `squeezenli model info`."""

from __future__ import annotations

from squeezenli.models.build import existing_models
from squeezenli.models.config import id2label, read_config
from squeezenli.models.hub import CONFIG, resolve
from squeezenli.models.labels import NLI_CLASSES, needs_measurement, resolve_labels
from squeezenli.runtime.labelcheck import stored_order
from squeezenli.runtime.precision import stored_agreement, stored_speed
from squeezenli.runtime.spec import ModelSpec


def model_info(spec: ModelSpec) -> dict:
    """A JSON-ready description of a resolved model (downloads it if it is not cached)."""
    files = resolve(spec.model, spec.revision, onnx_file=spec.onnx_file)
    label_order = spec.label_order
    raw = read_config(files.files[CONFIG])
    names = id2label(raw, str(files.files[CONFIG]))
    measured = stored_order(files) if needs_measurement(names, label_order) else None
    labels = resolve_labels(names, files.source, label_order, measured[0] if measured else None)
    agreement = stored_agreement(files)
    speed = stored_speed(files)
    built = {p: str(path) for p, path in existing_models(files).items()}
    return {
        "model": files.source,
        "revision": files.revision,
        "folder": str(files.folder),
        "model_type": raw.get("model_type"),
        "files": {name: path.stat().st_size for name, path in files.files.items()},
        "weights": files.weights_name,
        "onnx_files": list(files.variants),
        "measured_against": files.reference_name,
        "built": built,
        "labels": {str(i): name for i, name in enumerate(labels.names)},
        "label_source": labels.kind.value,
        "label_source_detail": labels.source,
        "label_check": None
        if measured is None
        else {
            "observed_order": list(measured[0]) if measured[0] else None,
            "wins": {gold: row.tolist() for gold, row in zip(NLI_CLASSES, measured[1])},
        },
        "int8_agreement": agreement.as_dict() if agreement else None,
        "int8_speed": speed.as_dict() if speed else None,
    }
