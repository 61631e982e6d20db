"""Find a model's files: a local folder, or a Hub repo brought into the Hugging Face cache.

Downloads go through huggingface_hub, so HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and
HF_HUB_OFFLINE behave as in every other Hugging Face tool. A pinned commit that is already
cached is used without any network round trip; the downloader is imported only when needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from squeezenli.errors import ModelError

log = logging.getLogger("squeezenli")

DEFAULT_MODEL = "squeezebert/squeezebert-mnli"
# refs/pr/3 of the default repo: the only revision with model.safetensors (design.md).
DEFAULT_REVISION = "608923b383cd0b3696e979bb00977571ad6e9dd3"

CONFIG = "config.json"
# In order of preference: weights we convert ourselves, then a ready ONNX export.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "model.onnx")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
OPTIONAL_FILES = ("tokenizer_config.json",)

_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# What an ETag may be before it names a file in the cache's blobs folder (no path parts).
_ETAG = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
# A transfer that brings fewer bytes than this in HF_HUB_DOWNLOAD_TIMEOUT seconds is stalled
# (a server that drips a byte a second never trips a read timeout).
MIN_PROGRESS_BYTES = 64 << 10


class HubUnreachable(ModelError):
    """The Hub could not be asked: no connection, a timeout, a stalled transfer."""


class _UnsafeAnswer(Exception):
    """A Hub answer whose commit hash or ETag would name a path outside the cache."""


class _Stalled(Exception):
    """A Hub transfer that stopped making progress."""


@dataclass(frozen=True)
class ModelFiles:
    """The files of one model, wherever they came from."""

    source: str  # repo id, or the absolute path of a local folder
    revision: str | None  # resolved commit hash for a Hub repo; None for a folder
    folder: Path  # the snapshot folder, or the local folder
    files: dict[str, Path]  # repo-relative name -> local path, for the chosen files
    build_dir: Path  # where this tool caches what it builds from these files

    @property
    def weights_name(self) -> str:
        return next(name for name in WEIGHT_FILES if name in self.files)

    def path(self, name: str) -> Path | None:
        return self.files.get(name)


def hub_cache() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub computes it from the environment."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def repo_folder(repo_id: str) -> Path:
    return hub_cache() / ("models--" + repo_id.replace("/", "--"))


def default_revision(model: str) -> str:
    return DEFAULT_REVISION if model == DEFAULT_MODEL else "main"


def looks_local(model: str) -> bool:
    """A model argument names a folder when it exists, or when it is written as a path."""
    return os.path.isdir(model) or model.startswith((".", "/", "~"))


def validate_repo_id(repo_id: str) -> None:
    if not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".", "-")):
        raise ModelError(
            f"'{repo_id}' is neither a folder nor a valid Hub repo id (expected owner/name)"
        )


def choose_files(available: set[str]) -> list[str]:
    """The files to fetch from a listing: config, one weights file, a tokenizer."""
    chosen = [CONFIG] if CONFIG in available else []
    if not chosen:
        raise ModelError(f"no {CONFIG} in the model's files")
    weights = next((name for name in WEIGHT_FILES if name in available), None)
    if weights is None:
        raise ModelError("no weights found: expected one of " + ", ".join(WEIGHT_FILES))
    tokenizer = next((name for name in TOKENIZER_FILES if name in available), None)
    if tokenizer is None:
        raise ModelError("no tokenizer found: expected tokenizer.json or vocab.txt")
    chosen += [weights, tokenizer]
    chosen += [name for name in OPTIONAL_FILES if name in available]
    return chosen


def _present(folder: Path) -> set[str]:
    """Which of the files we could use exist in a folder (no walk: the folder may be huge)."""
    names = (CONFIG, *WEIGHT_FILES, *TOKENIZER_FILES, *OPTIONAL_FILES)
    return {name for name in names if (folder / name).is_file()}


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def resolve(
    model: str | None = None, revision: str | None = None, *, progress: bool = True
) -> ModelFiles:
    """Local paths of a model's files, downloading them into the cache when needed. When
    the Hub cannot be reached, a cached snapshot of the revision is used, with a warning."""
    model = model or DEFAULT_MODEL
    if looks_local(model):
        return _resolve_local(model)
    validate_repo_id(model)
    revision = revision or default_revision(model)
    cached = _resolve_cached(model, revision)
    if cached is not None and (is_offline() or _COMMIT.match(revision)):
        return cached
    if is_offline():
        raise ModelError(
            f"{model}@{revision} is not in the cache ({hub_cache()}) and HF_HUB_OFFLINE is set: "
            f"run 'squeezenli model download --model {model}' while online, or unset HF_HUB_OFFLINE"
        )
    try:
        return _download(model, revision, progress=progress)
    except HubUnreachable as err:
        if cached is None:
            raise
        assert cached.revision is not None
        log.warning("%s; using the cached snapshot %s", err, cached.revision[:12])
        return cached


def _resolve_local(model: str) -> ModelFiles:
    import hashlib

    folder = Path(model).expanduser().resolve()
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    available = _present(folder)
    try:
        chosen = choose_files(available)
    except ModelError as err:
        raise ModelError(f"{folder}: {err}") from None
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    return ModelFiles(
        source=str(folder),
        revision=None,
        folder=folder,
        files={name: folder / name for name in chosen},
        build_dir=hub_cache() / "squeezenli-local" / key,
    )


def _cached_commit(repo_id: str, revision: str) -> str | None:
    if _COMMIT.match(revision):
        return revision
    ref = repo_folder(repo_id) / "refs" / revision
    try:
        commit = ref.read_text().strip()
    except OSError:
        return None
    return commit if _COMMIT.match(commit) else None


def _resolve_cached(repo_id: str, revision: str) -> ModelFiles | None:
    """The cached snapshot of a revision, if it holds everything needed."""
    commit = _cached_commit(repo_id, revision)
    if commit is None:
        return None
    snapshot = repo_folder(repo_id) / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    available = _present(snapshot)
    try:
        chosen = choose_files(available)
    except ModelError:
        return None
    return ModelFiles(
        source=repo_id,
        revision=commit,
        folder=snapshot,
        files={name: snapshot / name for name in chosen},
        build_dir=repo_folder(repo_id) / "squeezenli",
    )


def _download(repo_id: str, revision: str, *, progress: bool) -> ModelFiles:
    """List the revision's files on the Hub, then fetch the chosen ones into the cache."""
    import httpx2
    from huggingface_hub import HfApi, constants, hf_hub_download
    from huggingface_hub import errors as hf_errors
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    _guard_hub_answers()
    where = f"{repo_id}@{revision}"
    try:
        try:
            info = HfApi().model_info(
                repo_id, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT
            )
            listed = [s.rfilename for s in (info.siblings or [])]
        except (hf_errors.HfHubHTTPError, httpx2.HTTPError, OSError, _Stalled, _UnsafeAnswer):
            raise
        except Exception as err:  # JSON that is not a model listing: whatever parsing raised
            raise ModelError(f"the server's model listing is malformed ({err})") from None
        if not all(isinstance(name, str) for name in listed):
            raise ModelError("the server's model listing names files that are not text")
        unsafe = [name for name in listed if not _safe_name(name)]
        if unsafe:
            raise ModelError(f"the server listed an unsafe file name: {unsafe[0]!r}")
        chosen = choose_files(set(listed))
        _remove_dead_partials(repo_id)
        (disable_progress_bars if not progress else enable_progress_bars)()
        # The requested revision (not info.sha), so the cache records refs/<revision>
        # and a later offline run can find the snapshot by the same name.
        paths = {name: Path(hf_hub_download(repo_id, name, revision=revision)) for name in chosen}
    except hf_errors.GatedRepoError:
        raise ModelError(
            f"{repo_id} is gated: accept its terms on the Hub and set HF_TOKEN"
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelError(
            f"model repo '{repo_id}' not found on {_endpoint()} "
            "(check the name; a private repo needs HF_TOKEN)"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise ModelError(f"revision '{revision}' not found in {repo_id}") from None
    except hf_errors.RemoteEntryNotFoundError as err:
        raise ModelError(f"{where}: a listed file is missing on the server: {err}") from None
    except hf_errors.HfHubHTTPError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelError(f"{where}: download failed: {first}") from None
    except _UnsafeAnswer as err:
        raise ModelError(
            f"{where}: refused the server's answer: {err}; nothing was written"
        ) from None
    except (httpx2.HTTPError, _Stalled) as err:
        raise HubUnreachable(
            f"cannot download {where} from {_endpoint()}: {err or type(err).__name__} "
            "(offline? a cached model works with HF_HUB_OFFLINE=1; HF_HUB_ETAG_TIMEOUT and "
            "HF_HUB_DOWNLOAD_TIMEOUT set the waits)"
        ) from None
    except OSError as err:
        raise ModelError(f"{where}: {describe_os_error(err, hub_cache())}") from None
    except ModelError as err:
        raise ModelError(f"{where}: {err}") from None
    folder = paths[CONFIG].parent
    commit = folder.name if _COMMIT.match(folder.name) else (info.sha or revision)
    return ModelFiles(
        source=repo_id,
        revision=commit,
        folder=folder,
        files=paths,
        build_dir=repo_folder(repo_id) / "squeezenli",
    )


def _remove_dead_partials(repo_id: str) -> None:
    """huggingface_hub downloads into `blobs/<etag>.<random>.incomplete` and never resumes
    another process's file, so each download killed mid-way leaves one for ever. Those of an
    ETag that no process holds the download lock of are dead: removed before downloading,
    with torn ref files."""
    from filelock import FileLock, Timeout

    # A ref is written to `refs/<name>.<random>.tmp` and renamed at once: one a second old
    # was left by a failed write (a full disk).
    for torn in (repo_folder(repo_id) / "refs").rglob("*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - torn.stat().st_mtime > 1:
                torn.unlink()
    locks = hub_cache() / ".locks" / repo_folder(repo_id).name
    for partial in (repo_folder(repo_id) / "blobs").glob("*.incomplete"):
        lock = FileLock(str(locks / f"{partial.name.split('.')[0]}.lock"))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):  # being downloaded now, or no lock folder to check
            if locks.is_dir():
                continue
            partial.unlink(missing_ok=True)
            continue
        try:
            partial.unlink(missing_ok=True)
        finally:
            lock.release()


def describe_os_error(err: OSError, folder: Path) -> str:
    """A failed write into the cache as a user can act on it: which folder, and what to do."""
    import errno

    if err.errno is None:  # raised by a library, with its own words (first line only)
        first = str(err).strip().splitlines()
        text = first[0] if first else type(err).__name__
        if "Consistency check failed" in text:
            return f"{text.rstrip('.')}: the connection broke; run the command again"
        return text
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device of {folder}: free some, or point HF_HOME elsewhere"
    return (
        f"cannot write to the cache folder {folder} ({err.strerror or err}): point HF_HOME "
        "or HF_HUB_CACHE at a writable folder"
    )


_guarded: list[bool] = []


def _guard_hub_answers() -> None:
    """Have huggingface_hub's HTTP client check every answer before the library acts on it:
    a commit hash or ETag that is not a plain name is refused (the library would make a
    path of it), and a body that brings fewer than MIN_PROGRESS_BYTES per
    HF_HUB_DOWNLOAD_TIMEOUT seconds is cut off. Installed once per process."""
    if _guarded:
        return
    import httpx2
    from huggingface_hub import constants, set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    class ProgressGuard(httpx2.SyncByteStream):
        """A response body that raises _Stalled when a window of `seconds` brings fewer than
        MIN_PROGRESS_BYTES and the body has not ended."""

        def __init__(self, inner, seconds: float) -> None:
            self._inner = inner
            self._seconds = seconds

        def __iter__(self):
            start, got = time.monotonic(), 0
            for chunk in self._inner:
                got += len(chunk)
                now = time.monotonic()
                if now - start > self._seconds:
                    if got < MIN_PROGRESS_BYTES:
                        raise _Stalled(f"the server sent {got} bytes in {now - start:.0f} s")
                    start, got = now, 0
                yield chunk

        def close(self) -> None:
            self._inner.close()

    def check(response) -> None:
        commit = response.headers.get("X-Repo-Commit")
        if commit is not None and not _COMMIT.match(commit):
            raise _UnsafeAnswer(f"commit hash {commit[:80]!r} is not 40 hex digits")
        for header in ("ETag", "X-Linked-Etag"):
            etag = response.headers.get(header)
            if etag is None:
                continue
            name = etag.removeprefix("W/").strip('"')
            if not _ETAG.match(name) or ".." in name:
                raise _UnsafeAnswer(f"{header} {etag[:80]!r} is not a plain name")
        response.stream = ProgressGuard(response.stream, constants.HF_HUB_DOWNLOAD_TIMEOUT)

    def factory():
        client = default_client_factory()
        client.event_hooks = {**client.event_hooks, "response": [check]}
        return client

    set_client_factory(factory)
    _guarded.append(True)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def forget(files: ModelFiles, name: str) -> None:
    """Drop one damaged file of a cached snapshot (its link and its blob), so that resolving
    the model again downloads it afresh."""
    link = files.files[name]
    blob = link.resolve()
    link.unlink(missing_ok=True)
    if blob.is_relative_to(hub_cache().resolve()):
        blob.unlink(missing_ok=True)
