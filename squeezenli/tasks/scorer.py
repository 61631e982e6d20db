"""One interface for where a task runs: here (LocalScorer), on a `squeezenli serve` server
(serve.client.Remote) or in Ray's actors (each holding a LocalScorer). Each takes records
and a task's options object and gives a Result per record, in input order, so a command
picks a scorer and writes what comes back, whatever the backend."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from squeezenli.choices import OnError
from squeezenli.records.readers import Record
from squeezenli.tasks.options import CheckOptions, PairOptions, TaskOptions, ZeroShotOptions

if TYPE_CHECKING:
    from squeezenli.models.labels import LabelMap
    from squeezenli.runtime.model import NLIModel
    from squeezenli.tasks.results import Result
    from squeezenli.tasks.thresholds import ModelIdentity


class Scorer(Protocol):
    def results(
        self,
        records: Iterable[Record],
        options: TaskOptions,
        *,
        on_error: OnError | str = OnError.SKIP,
        timely: bool = False,
    ) -> Iterator[Result]:
        """A Result per record, in input order, for the task the options are of."""
        ...

    def labels(self) -> LabelMap:
        """The model's label mapping (the names its scores are under)."""
        ...

    def identity(self) -> ModelIdentity:
        """The model, revision and precision that score."""
        ...


# A task's function, by its options' task: (module, name).
_TASKS = {
    PairOptions.task: ("squeezenli.tasks.scoring", "score_records"),
    ZeroShotOptions.task: ("squeezenli.tasks.zeroshot", "classify_records"),
    CheckOptions.task: ("squeezenli.tasks.claims", "check_records"),
}


class LocalScorer:
    """The tasks run here, on a loaded model."""

    def __init__(self, nli: NLIModel) -> None:
        self.nli = nli

    def labels(self) -> LabelMap:
        return self.nli.labels

    def identity(self) -> ModelIdentity:
        from squeezenli.tasks.thresholds import identity_of

        return identity_of(self.nli)

    def results(
        self,
        records: Iterable[Record],
        options: TaskOptions,
        *,
        on_error: OnError | str = OnError.SKIP,
        timely: bool = False,
    ) -> Iterator[Result]:
        from importlib import import_module

        module, name = _TASKS[options.task]  # only the task asked for is imported
        task: Callable[..., Iterator[Result]] = getattr(import_module(module), name)
        return task(self.nli, records, options=options, on_error=on_error, timely=timely)
