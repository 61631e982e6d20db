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
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from squeezenli.choices import OnError, choose
from squeezenli.errors import InputError, SqueezenliError
from squeezenli.models.labels import LabelMap
from squeezenli.records.readers import Record, RowError, RowFailure
from squeezenli.records.writers import dump_json
from squeezenli.runtime.prediction import Prediction
from squeezenli.tasks.options import CheckOptions, PairOptions, TaskOptions, ZeroShotOptions
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


class Remote:
    """A squeezenli server at `url` (http://host:port), with its bearer token if it needs one."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 300.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(
                f"`server` must be an http(s) URL like http://127.0.0.1:8080, got {url!r}"
            )
        self.url = f"{parts.scheme}://{parts.netloc}"
        self._parts = parts
        self._api_key = api_key
        self._timeout = timeout
        self._local = threading.local()  # a connection per thread

    def _connection(self) -> http.client.HTTPConnection:
        found = getattr(self._local, "connection", None)
        if found is None:
            kind = (
                http.client.HTTPSConnection
                if self._parts.scheme == "https"
                else http.client.HTTPConnection
            )
            host = self._parts.hostname or "127.0.0.1"
            found = kind(host, self._parts.port, timeout=self._timeout)
            self._local.connection = found
        return found

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The server's JSON answer; its refusal as an InputError (4xx) or SqueezenliError."""
        import orjson

        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        payload = None if body is None else dump_json(body)
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more
            connection = self._connection()
            try:
                connection.request(method, path, payload, headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as err:
                connection.close()
                self._local.connection = None
                if attempt == 2 or not isinstance(
                    err, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                ):
                    raise SqueezenliError(f"cannot reach the server at {self.url}: {err}") from None
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            answer = {"error": data[:200].decode("utf-8", "replace")}
        if response.status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else str(answer)
            text = f"the server at {self.url} refused {path} ({response.status}): {message}"
            if 400 <= response.status < 500 and response.status != 429:
                raise InputError(text)
            raise SqueezenliError(text)
        return answer

    def info(self) -> dict:
        return self.request("GET", "/info")

    def identity(self) -> ModelIdentity:
        """The served model, revision and precision, as /info gives them."""
        info = self.info()
        return ModelIdentity(info["model_id"], info["model_revision"], info["precision"])

    def labels(self) -> LabelMap:
        """The served model's label mapping, as /info gives it."""
        from squeezenli.choices import LabelSource

        info = self.info()
        return LabelMap(
            tuple(info["labels"]),
            info.get("label_source_detail", ""),
            choose(LabelSource, info.get("label_source", "config"), "label_source"),
        )

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
                answers = iter(self.request("POST", path, body)["results"])
            for record in window:
                if record.error or record.data is None:
                    error = RowError.of(record, record.error or "no row")
                else:
                    answer = next(answers)
                    if "result" in answer:
                        pair = pair_of(record) if pair_of is not None else None
                        yield Result(record, output(answer["result"], record), pair=pair)
                        continue
                    found = answer["error"]
                    error = RowError.of(record, found["message"], found.get("field"))
                if on_error is OnError.FAIL:
                    raise RowFailure(error)
                yield Result(record, error=error)

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
            return Fields(found)

        options = CheckOptions.of(options, **changes)
        return self._results(options, records, on_error, timely, checked)
