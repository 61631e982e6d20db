"""What `check` reads from a row beside its text: the source as one passage or a list of
them (a RAG answer's retrieved passages), and the claims when the caller gives them.

A source is a string (one passage, cited as 0), or a list whose items are strings (cited by
their index) or objects with `text` and an optional `id` (a string or an integer; cited by
it). Keys are distinct within a row. A CSV/TSV cell holds only text, so there a cell that is
a JSON array (its first non-blank character `[`, and it parses) is read as the list; any
other cell is one passage. Claims given in a field are a list of strings, or of objects with
`text` (and an optional `id`, kept in the result), read the same way from CSV/TSV.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from squeezenli.records.readers import Record, RowError, RowFailure, did_you_mean, text_field
from squeezenli.tasks.options import kind_of

# A row's passages are scored against each of its claims: past this many, a row is refused
# rather than left to run for minutes (a RAG answer cites a handful).
MAX_PASSAGES = 1024


@dataclass(frozen=True)
class Passage:
    """One passage of a source: the key it is cited by (its id, else its index) and text."""

    key: str | int
    text: str


@dataclass(frozen=True)
class GivenClaim:
    """A claim as the caller gave it, and its id when it came with one."""

    text: str
    id: str | int | None = None


def read_passages(record: Record, field: str) -> tuple[list[Passage], bool]:
    """The passages of a record's source field (module docstring) and whether it listed
    them, or a RowFailure naming the field and the passage at fault."""
    value = _listed(record, field)
    if isinstance(value, str):
        return [Passage(0, text_field(record, field))], False
    if not isinstance(value, list):
        _fail(
            record,
            field,
            f"field '{field}' must be text or a list of passages, got {kind_of(value)}",
        )
    if not value:
        _fail(record, field, f"field '{field}' is an empty list: give at least one passage")
    if len(value) > MAX_PASSAGES:
        _fail(
            record,
            field,
            f"field '{field}' holds {len(value)} passages, more than {MAX_PASSAGES}: "
            "split the row, or keep the passages that were retrieved for it",
        )
    passages: list[Passage] = []
    keys: set[str | int] = set()
    for index, item in enumerate(value):
        where = f"'{field}'[{index}]"
        key, text = _item(record, field, where, index, item, "passage")
        if key in keys:
            _fail(record, field, f"passage key {key!r} names two passages of '{field}' ({where})")
        keys.add(key)
        passages.append(Passage(key, text))
    return passages, True


def read_claims(record: Record, field: str) -> list[GivenClaim]:
    """The claims of a record's claims field (module docstring), or a RowFailure."""
    value = _listed(record, field)
    if not isinstance(value, list):
        _fail(
            record,
            field,
            f"field '{field}' must be a list of claims (strings, or objects with 'text'), "
            f"got {kind_of(value)}",
        )
    if not value:
        _fail(record, field, f"field '{field}' is an empty list: give at least one claim")
    claims = []
    for index, item in enumerate(value):
        key, text = _item(record, field, f"'{field}'[{index}]", None, item, "claim")
        claims.append(GivenClaim(text, key))
    return claims


def _listed(record: Record, field: str) -> Any:
    """The field's value; in CSV/TSV, a cell that is a JSON array is that list."""
    assert record.data is not None
    if field not in record.data:
        close = did_you_mean(field, list(record.data))
        _fail(record, field, f"missing field '{field}'{close}")
    value = record.data[field]
    if record.tabular and isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, list):
            return parsed
    return value


def _item(
    record: Record, field: str, where: str, index: int | None, item: Any, what: str
) -> tuple[Any, str]:
    """(key, text) of one passage or claim: a string, or an object with `text` and `id`."""
    if isinstance(item, str):
        key, text = index, item
    elif isinstance(item, dict):
        given = item.get("text")
        if not isinstance(given, str):
            _fail(record, field, f"{what} {where} needs 'text', a string, got {kind_of(given)}")
        text = str(given)
        key = item.get("id", index)
        if "id" in item and (isinstance(key, bool) or not isinstance(key, (str, int))):
            _fail(record, field, f"{what} {where}: 'id' must be a string or an integer")
    else:
        _fail(
            record,
            field,
            f"{what} {where} must be text or an object with 'text', got {kind_of(item)}",
        )
    if not text.strip():
        _fail(record, field, f"{what} {where} is empty")
    return key, text


def _fail(record: Record, field: str, message: str) -> Any:
    raise RowFailure(RowError.of(record, message, field))
