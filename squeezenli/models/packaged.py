"""The reference pairs squeezenli ships (data/README.md), read as untrusted files: an
install can be damaged, or edited, like any other file on disk."""

from __future__ import annotations

from importlib import resources

import orjson

from squeezenli.errors import ModelError


def packaged_rows(name: str, fields: tuple[str, ...], labels: tuple[str, ...] = ()) -> list[dict]:
    """The rows of data/<name>, each an object with a non-empty string in every field (and
    a `label` among labels, when given); a damaged file is one clear error, not a traceback."""
    path = resources.files("squeezenli").joinpath("data", name)

    def damaged(why: str) -> ModelError:
        return ModelError(
            f"squeezenli's own {path} {why}: reinstall squeezenli "
            "(pip install --force-reinstall --no-deps squeezenli)"
        )

    try:
        text = path.read_bytes()
    except OSError as err:
        raise damaged(f"cannot be read ({err.strerror or err})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise damaged(f"is damaged (line {number}: {err})") from None
        if not isinstance(row, dict):
            raise damaged(f"is damaged (line {number} is not an object)")
        for field in fields:
            if not isinstance(row.get(field), str) or not row[field]:
                raise damaged(f"is damaged (line {number} has no text in '{field}')")
        if labels and row.get("label") not in labels:
            raise damaged(f"is damaged (line {number}: 'label' is not one of {', '.join(labels)})")
        rows.append(row)
    if not rows:
        raise damaged("is empty")
    return rows
