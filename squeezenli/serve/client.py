"""A running `squeezenli serve` as a scorer: `--server URL` for batch, classify and check,
and the same Results as the local functions for the Python API, so a pipeline switches with
one flag. Standard library only (http.client, one kept-alive connection): the client needs
no extra install.

Records are sent in windows as the local path cuts them (16 first, growing; cut early when
a live input pauses), each window one request asking for the result's fields alone
(`rows_back: false`): the input row stays here, where the output is shaped and a field
that would overwrite an input field is refused, as locally.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import SplitResult, urlsplit

from squeezenli.choices import OnError, choose
from squeezenli.errors import InputError, ServerError
from squeezenli.models.labels import LabelMap
from squeezenli.records.readers import Record, RowError, RowFailure, loads_exact
from squeezenli.records.writers import dump_json
from squeezenli.runtime.prediction import Prediction
from squeezenli.serve.limits import CLIENT_TIMEOUT_S
from squeezenli.serve.requests import WANTED, check_api_key
from squeezenli.tasks.options import (
    CheckOptions,
    PairOptions,
    TaskOptions,
    ZeroShotOptions,
    kind_of,
)
from squeezenli.tasks.results import PairFields, Result, ZeroShot
from squeezenli.tasks.thresholds import ModelIdentity
from squeezenli.tasks.windows import growing_windows, timely_windows

WINDOW = 64  # records per request after the first ones


class Fields:
    """A remote result known by its fields (what Check.fields gives), for the writers."""

    def __init__(self, fields: dict) -> None:
        self._fields = fields
        self.truncated = bool(fields.get("truncated", False))

    def fields(self) -> dict:
        return self._fields


def _weight(record: Record) -> int:
    return sum(len(v) for v in (record.data or {}).values() if isinstance(v, str))


MAX_ANSWER_BYTES = 64 << 20  # an answer past this is refused unread (a window's is far less)


def _server_url(url: str) -> SplitResult:
    """--server's URL, refused (naming it) before any request when no request could go."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        parts.port  # noqa: B018 (a port past 65535 or not a number raises here)
    except ValueError as err:
        raise InputError(
            f"`server` is not a URL like http://127.0.0.1:8080 ({err}): {url!r}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"`server` must be an http(s) URL like http://127.0.0.1:8080, got {url!r}", "server"
        )
    if parts.query or parts.fragment or parts.username is not None:
        raise InputError(
            f"`server` takes the server's address (and a path under which it answers), "
            f"without a query, fragment or user: got {url!r}",
            "server",
        )
    return parts._replace(path=parts.path.rstrip("/"))


def _one_result(item: Any) -> bool:
    """Whether a result is {"result": {...}} or {"error": {"message": str, "field": ...}}."""
    if not isinstance(item, dict):
        return False
    if "error" in item:
        error = item["error"]
        return (
            isinstance(error, dict)
            and isinstance(error.get("message"), str)
            and isinstance(error.get("field"), (str, type(None)))
        )
    return isinstance(item.get("result"), dict)


def _expect(
    found: dict, name: str, kind: type, *, optional: bool = False, default: Any = None
) -> Any:
    """found[name], of `kind` (None, or absent, only where `optional`), else a ValueError
    saying what it is."""
    value = found.get(name)
    if value is None and optional:
        return default
    if name not in found:
        raise KeyError(f"`{name}`")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"`{name}` is {kind_of(value)}, not {WANTED[kind]}")
    return value


def _numbers(values: Iterable[Any], name: str, kind: type = float) -> None:
    """Every value a number (an integer where `kind` is int), never a boolean."""
    wanted = (int,) if kind is int else (int, float)
    if not all(isinstance(v, wanted) and not isinstance(v, bool) for v in values):
        raise ValueError(f"`{name}` must hold {'integers' if kind is int else 'numbers'} only")


class Remote:
    """A squeezenli server at `url` (http://host:port, or under a path prefix), with its
    bearer token if it needs one. The server is not trusted: an answer that is not the
    documented shape (types, keys, counts, size), a redirect, a truncated body or silence
    past `timeout` seconds is a ServerError naming the server and what was wrong."""

    def __init__(
        self, url: str, api_key: str | None = None, timeout: float = CLIENT_TIMEOUT_S
    ) -> None:
        self._parts = _server_url(url)
        self.url = f"{self._parts.scheme}://{self._parts.netloc}{self._parts.path}"
        self._prefix = self._parts.path
        self._api_key = None if api_key is None else check_api_key(api_key)
        if not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):
            raise InputError(
                f"`timeout` must be a number of seconds over 0, got {timeout!r}", "timeout"
            )
        self._timeout = float(timeout)
        self._local = threading.local()  # a connection per thread

    def _connection(self) -> http.client.HTTPConnection:
        found = getattr(self._local, "connection", None)
        if found is None:
            kind = (
                http.client.HTTPSConnection
                if self._parts.scheme == "https"
                else http.client.HTTPConnection
            )
            found = kind(self._parts.hostname or "", self._parts.port, timeout=self._timeout)
            self._local.connection = found
        return found

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The server's JSON answer; its refusal as an InputError (4xx) or ServerError."""
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        payload = None if body is None else dump_json(body)
        where = f"{method} {path}"
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more
            connection = self._connection()
            deadline = time.monotonic() + self._timeout
            try:
                connection.request(method, self._prefix + path, payload, headers)
                response = connection.getresponse()
                data = self._read(connection, response, deadline, where)
                break
            except TimeoutError:
                self._drop(connection)
                raise self._error(f"did not answer {where} within {self._timeout:g} s") from None
            except http.client.IncompleteRead:
                self._drop(connection)
                raise self._error(f"sent a truncated answer to {where}") from None
            except (ConnectionError, http.client.HTTPException, OSError) as err:
                self._drop(connection)
                if attempt == 2 or not isinstance(
                    err, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                ):
                    raise ServerError(f"cannot reach the server at {self.url}: {err}") from None
        return self._answer(response, data, where)

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._local.connection = None

    def _error(self, what: str) -> ServerError:
        return ServerError(f"the server at {self.url} {what}")

    def _read(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        deadline: float,
        where: str,
    ) -> bytes:
        """The answer's body, whole, within the deadline and MAX_ANSWER_BYTES."""
        too_big = self._error(
            f"answered {where} with over {MAX_ANSWER_BYTES >> 20} MiB: refused unread"
        )
        declared = response.getheader("content-length") or ""
        if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
            self._drop(connection)
            raise too_big
        chunks, size = [], 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if connection.sock is not None:
                connection.sock.settimeout(left)
            chunk = response.read1(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                self._drop(connection)
                raise too_big
            chunks.append(chunk)
        if response.length:  # the connection closed short of its Content-Length
            raise http.client.IncompleteRead(b"".join(chunks), response.length)
        response.close()  # read whole: the connection can take the next request
        if connection.sock is not None:
            connection.sock.settimeout(self._timeout)
        return b"".join(chunks)

    def _answer(self, response: http.client.HTTPResponse, data: bytes, where: str) -> Any:
        """A JSON answer of a 2xx; anything else as the error it is."""
        status = response.status
        if 300 <= status < 400:
            target = response.getheader("location") or "nowhere"
            raise self._error(
                f"answered {where} with a redirect ({status}) to {target}: give --server the "
                "URL the server answers on (redirects are not followed)"
            )
        try:
            answer = loads_exact(data)
        except (ValueError, RecursionError):
            answer = None
            if 200 <= status < 300:
                raise self._error(f"answered {where} with what is not JSON") from None
        if 200 <= status < 300:
            return answer
        message = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(message, str):
            message = data[:200].decode("utf-8", "replace")
        text = f"the server at {self.url} refused {where} ({status}): {message}"
        if 400 <= status < 500 and status != 429:
            raise InputError(text)
        raise ServerError(text)

    def info(self) -> dict:
        info = self.request("GET", "/info")
        if not isinstance(info, dict):
            raise self._error("answered GET /info with what is not an object")
        return info

    def identity(self) -> ModelIdentity:
        """The served model, revision and precision, as /info gives them."""
        info = self.info()
        model, revision, precision = (
            info.get(k) for k in ("model_id", "model_revision", "precision")
        )
        if not (
            isinstance(model, str)
            and isinstance(precision, str)
            and isinstance(revision, (str, type(None)))
        ):
            raise self._error("answered GET /info without model_id, model_revision, precision")
        return ModelIdentity(model, revision, precision)

    def labels(self) -> LabelMap:
        """The served model's label mapping, as /info gives it."""
        from squeezenli.choices import LabelSource

        info = self.info()
        names, detail = info.get("labels"), info.get("label_source_detail", "")
        if (
            not isinstance(names, list)
            or len(names) < 2
            or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)
            or not isinstance(detail, str)
        ):
            raise self._error("answered GET /info without `labels`, a list of distinct names")
        try:
            kind = choose(LabelSource, info.get("label_source", "config"), "label_source")
        except InputError as err:
            raise self._error(f"answered GET /info with {err}") from None
        return LabelMap(tuple(names), detail, kind)

    def _window(self, path: str, body: dict, count: int) -> list[dict]:
        """The server's answers for a window of `count` rows: exactly that many, each a
        result or a row error (checked before any row of the window is written)."""
        where = f"POST {path}"
        answer = self.request("POST", path, body)
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise self._error(f"answered {where} without a `results` list")
        if len(results) != count:
            raise self._error(f"answered {where} with {len(results)} results for {count} rows")
        for index, item in enumerate(results):
            if not _one_result(item):
                raise self._error(
                    f"answered {where} with results[{index}] that is neither "
                    '{"result": {...}} nor {"error": {"message": "..."}}'
                )
        return results

    def _results(
        self,
        options: TaskOptions,
        records: Iterable[Record],
        on_error: OnError | str,
        timely: bool,
        output,
        pair_of=None,
    ) -> Iterator[Result]:
        """Each record's Result from the server, in input order (module docstring)."""
        path, wire = f"/{options.task}", options.to_wire()
        on_error = choose(OnError, on_error, "on_error")
        windows = (
            timely_windows(records, WINDOW, weight=_weight)
            if timely
            else growing_windows(records, WINDOW, weight=_weight)
        )
        for window in windows:
            good = [r for r in window if not r.error and r.data is not None]
            answers: Iterator[dict] = iter([])
            if good:
                body = {**wire, "rows": [r.data for r in good], "rows_back": False}
                answers = iter(self._built(path, self._window(path, body, len(good)), good, output))
            for record in window:
                if record.error or record.data is None:
                    error = RowError.of(record, record.error or "no row")
                else:
                    answer = next(answers)
                    if not isinstance(answer, dict):
                        pair = pair_of(record) if pair_of is not None else None
                        yield Result(record, answer, pair=pair)
                        continue
                    error = RowError.of(record, answer["message"], answer.get("field"))
                if on_error is OnError.FAIL:
                    raise RowFailure(error)
                yield Result(record, error=error)

    def _built(self, path: str, answers: list[dict], records: list[Record], output) -> list:
        """Each answer's output (or its error, a dict), built before any row of the window is
        written: a result the output cannot be built from is the server's error."""
        built = []
        for index, (answer, record) in enumerate(zip(answers, records)):
            if "error" in answer:
                built.append(answer["error"])
                continue
            try:
                built.append(output(answer["result"], record))
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                wrong = f"lacks {err}" if isinstance(err, KeyError) else str(err)
                raise self._error(
                    f"answered POST {path} with results[{index}] not as documented: {wrong}"
                ) from None
        return built

    def results(
        self,
        records: Iterable[Record],
        options: TaskOptions,
        *,
        on_error: OnError | str = OnError.SKIP,
        timely: bool = False,
    ) -> Iterator[Result]:
        """The Scorer interface (tasks/scorer.py): the task the options are of, served."""
        tasks: dict[str, Callable[..., Iterator[Result]]] = {
            PairOptions.task: self.score_records,
            ZeroShotOptions.task: self.classify_records,
            CheckOptions.task: self.check_records,
        }
        task = tasks[options.task]
        return task(records, options=options, on_error=on_error, timely=timely)

    def score_records(
        self,
        records: Iterable[Record],
        options: PairOptions | None = None,
        *,
        on_error: OnError | str = OnError.SKIP,
        timely: bool = False,
        **changes: Any,
    ) -> Iterator[Result[Prediction]]:
        """score_records, on the server."""
        options = PairOptions.of(options, **changes)
        fields = PairFields(options.premise_field, options.hypothesis_field)  # for tables

        def prediction(found: dict, record: Record) -> Prediction:
            scores = _expect(found, "scores", dict)
            _numbers(scores.values(), "scores")
            if _expect(found, "prediction", str) not in scores:
                raise ValueError("`prediction` is none of the labels of `scores`")
            _expect(found, "truncated", bool, optional=True)
            _expect(found, "entailed", bool, optional=True)
            _numbers(_expect(found, "logits", dict, optional=True, default={}).values(), "logits")
            evidence = _expect(found, "evidence", dict, optional=True)
            if evidence is not None:
                _numbers([evidence.get("start"), evidence.get("end")], "evidence", int)
                _expect(found, "windows", int)
            return Prediction.from_fields(found)

        return self._results(options, records, on_error, timely, prediction, fields.read)

    def classify_records(
        self,
        records: Iterable[Record],
        labels: str | list[str] | None = None,
        options: ZeroShotOptions | None = None,
        *,
        on_error: OnError | str = OnError.SKIP,
        timely: bool = False,
        **changes: Any,
    ) -> Iterator[Result[ZeroShot]]:
        """classify_records, on the server."""
        if labels is not None:
            changes["labels"] = labels
        options = ZeroShotOptions.of(options, **changes)
        text_field = options.text_field

        def zero_shot(fields: dict, record: Record) -> ZeroShot:
            text = fields.get("text", (record.data or {}).get(text_field, ""))
            labels = _expect(fields, "labels", list)
            scores = _expect(fields, "scores", list)
            if not all(isinstance(label, str) for label in labels) or len(labels) != len(scores):
                raise ValueError("`labels` must be as many strings as `scores` holds numbers")
            _numbers(scores, "scores")
            _expect(fields, "truncated", bool, optional=True)
            selected = _expect(fields, "selected", list, optional=True, default=[])
            if not set(selected) <= set(labels):
                raise ValueError("`selected` names labels the answer does not hold")
            return ZeroShot(
                text,
                fields["labels"],
                fields["scores"],
                bool(fields.get("truncated", False)),
                fields.get("selected"),
            )

        return self._results(options, records, on_error, timely, zero_shot)

    def check_records(
        self,
        records: Iterable[Record],
        options: CheckOptions | None = None,
        *,
        on_error: OnError | str = OnError.SKIP,
        timely: bool = False,
        **changes: Any,
    ) -> Iterator[Result[Fields]]:
        """check_records, on the server (each output known by its fields)."""

        def checked(found: dict, record: Record) -> Fields:
            claims = _expect(found, "claims", list)
            if not all(isinstance(claim, dict) for claim in claims):
                raise ValueError("`claims` must be a list of objects")
            if found.get("score") is not None:
                _numbers([found["score"]], "score")
            _expect(found, "supported_text", str)
            _expect(found, "windows", int)
            return Fields(found)

        options = CheckOptions.of(options, **changes)
        return self._results(options, records, on_error, timely, checked)
