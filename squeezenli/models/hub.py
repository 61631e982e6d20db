"""Find a model's files: a local folder, or a Hub repo brought into the Hugging Face cache.

Downloads go through huggingface_hub, so HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and
HF_HUB_OFFLINE behave as in every other Hugging Face tool. A pinned commit that is already
cached is used without any network round trip; the downloader is imported only when needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from squeezenli.errors import DamagedDownloadError, ModelError

log = logging.getLogger("squeezenli")

DEFAULT_MODEL = "squeezebert/squeezebert-mnli"
# refs/pr/3 of the default repo: the only revision with model.safetensors (design.md).
DEFAULT_REVISION = "608923b383cd0b3696e979bb00977571ad6e9dd3"

CONFIG = "config.json"
# Weights the converter reads, for the model types it converts (config.CONVERTIBLE).
CONVERTED_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# A repo's ONNX sequence-classification export, for every other model type.
EXPORTS = ("onnx/model.onnx", "model.onnx")
# Where exports and their variants (onnx/model_quantized.onnx, ...) are looked for.
EXPORT_FOLDERS = ("", "onnx")
# An export over 2 GB keeps its tensors beside it: model.onnx_data, model.onnx.data, ...
EXTERNAL_DATA = ("_data", ".data")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
OPTIONAL_FILES = ("tokenizer_config.json",)

_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_BLOB = re.compile(r"^[0-9a-f]{40,64}$")  # a cache blob's name: its sha256 or git sha1
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
    weights_name: str  # what is converted (safetensors, .bin) or run (an ONNX file)
    # The repo's own fp32 export, when weights_name is another of its ONNX variants: what the
    # variant is measured against, and what fp32 runs.
    reference_name: str | None = None
    variants: tuple[str, ...] = ()  # every ONNX file the repo or folder holds

    def path(self, name: str) -> Path | None:
        return self.files.get(name)

    def large_files(self) -> list[str]:
        """The weights, the reference export and their external data: hashed into the build
        key, not re-checked at every load as the small files are."""
        heads = [n for n in (self.weights_name, self.reference_name) if n is not None]
        return [n for n in self.files if n in heads or n.startswith(data_prefixes(*heads))]


@dataclass(frozen=True)
class Choice:
    """Which of a model's files to use (choose_files)."""

    names: list[str]
    weights: str
    reference: str | None
    variants: tuple[str, ...]


def data_prefixes(*models: str) -> tuple[str, ...]:
    """How the names of these ONNX files' external data files begin."""
    return tuple(model + suffix for model in models for suffix in EXTERNAL_DATA)


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


def choose_files(available: set[str], config: dict, onnx_file: str | None = None) -> Choice:
    """The files to use from what a model has, by what its config says: the weights of a
    type the converter handles, else the repo's ONNX export (with its external data), or the
    ONNX file asked for; a tokenizer; the optional files."""
    from squeezenli.models.config import CONVERTIBLE, shown

    if CONFIG not in available:
        raise ModelError(f"no {CONFIG} in the model's files")
    variants = tuple(sorted(name for name in available if name.endswith(".onnx")))
    exports = [name for name in EXPORTS if name in available]
    model_type = config.get("model_type")
    if onnx_file is not None:
        if onnx_file not in variants or not _safe_name(onnx_file):
            has = ", ".join(variants) if variants else "none"
            raise ModelError(f"`onnx_file` {onnx_file!r} is not among its ONNX files ({has})")
        weights = onnx_file
    else:
        converted = [n for n in CONVERTED_WEIGHTS if n in available]
        usable = converted if model_type in CONVERTIBLE else []
        if not usable and not exports:
            if model_type in CONVERTIBLE:
                looked = f"{' or '.join(CONVERTED_WEIGHTS)} to convert, or {' or '.join(EXPORTS)}"
                raise ModelError(f"no weights found: expected {looked}")
            others = f"; its ONNX files: {', '.join(variants)} (choose one with `onnx_file`)"
            raise ModelError(
                f"model_type {shown(model_type)} is not supported for conversion (squeezenli "
                f"converts {', '.join(CONVERTIBLE)}) and the model has no ONNX "
                f"sequence-classification export (looked for {', '.join(EXPORTS)})"
                + (others if variants else "")
            )
        weights = (usable or exports)[0]
    # A variant is measured against the repo's fp32 export; without one, it is the export.
    reference = exports[0] if onnx_file not in (None, *EXPORTS) and exports else None
    tokenizer = next((name for name in TOKENIZER_FILES if name in available), None)
    if tokenizer is None:
        raise ModelError("no tokenizer found: expected tokenizer.json or vocab.txt")
    models = [name for name in (weights, reference) if name is not None]
    data = sorted(name for name in available if name.startswith(data_prefixes(*models)))
    names = [CONFIG, *models, *data, tokenizer]
    names += [name for name in OPTIONAL_FILES if name in available]
    return Choice(names, weights, reference, variants)


def _present(folder: Path, onnx_file: str | None = None) -> set[str]:
    """The files of a folder we could use: its top level and the folders exports live in
    (no walk: the folder may be huge)."""
    subfolders = {*EXPORT_FOLDERS, os.path.dirname(onnx_file or "")}
    names: set[str] = set()
    for sub in subfolders:
        if sub and not _safe_name(sub):
            continue
        try:
            with os.scandir(folder / sub) as entries:
                names.update(f"{sub}/{e.name}" if sub else e.name for e in entries if e.is_file())
        except OSError:  # no such subfolder
            continue
    return names


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def resolve(
    model: str | None = None,
    revision: str | None = None,
    *,
    onnx_file: str | None = None,
    progress: bool = True,
) -> ModelFiles:
    """Local paths of a model's files, downloading them into the cache when needed. When
    the Hub cannot be reached, a cached snapshot of the revision is used, with a warning.
    onnx_file picks one of the ONNX files the model holds (choose_files)."""
    model = model or DEFAULT_MODEL
    if looks_local(model):
        return _resolve_local(model, onnx_file)
    validate_repo_id(model)
    revision = revision or default_revision(model)
    cached = _resolve_cached(model, revision, onnx_file)
    if cached is not None and (is_offline() or _COMMIT.match(revision)):
        return cached
    if is_offline():
        raise ModelError(
            f"{model}@{revision} is not in the cache ({hub_cache()}) and HF_HUB_OFFLINE is set: "
            f"run 'squeezenli model download --model {model}' while online, or unset HF_HUB_OFFLINE"
        )
    try:
        return _download(model, revision, onnx_file, progress=progress)
    except HubUnreachable as err:
        if cached is None:
            raise
        assert cached.revision is not None
        log.warning("%s; using the cached snapshot %s", err, cached.revision[:12])
        return cached


def _files(
    folder: Path, choice: Choice, source: str, revision: str | None, build_dir: Path
) -> ModelFiles:
    return ModelFiles(
        source=source,
        revision=revision,
        folder=folder,
        files={name: folder / name for name in choice.names},
        build_dir=build_dir,
        weights_name=choice.weights,
        reference_name=choice.reference,
        variants=choice.variants,
    )


def _config_of(folder: Path) -> dict:
    from squeezenli.models.config import read_config

    return read_config(folder / CONFIG) if (folder / CONFIG).is_file() else {}


def _resolve_local(model: str, onnx_file: str | None = None) -> ModelFiles:
    folder = Path(model).expanduser().resolve()
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    config = _config_of(folder)
    try:
        choice = choose_files(_present(folder, onnx_file), config, onnx_file)
    except ModelError as err:
        raise ModelError(f"{folder}: {err}") from None
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    return _files(folder, choice, str(folder), None, hub_cache() / "squeezenli-local" / key)


def _cached_commit(repo_id: str, revision: str) -> str | None:
    if _COMMIT.match(revision):
        return revision
    ref = repo_folder(repo_id) / "refs" / revision
    try:
        commit = ref.read_text().strip()
    except OSError:
        return None
    return commit if _COMMIT.match(commit) else None


def _resolve_cached(repo_id: str, revision: str, onnx_file: str | None) -> ModelFiles | None:
    """The cached snapshot of a revision, if it holds everything needed. A snapshot holds
    only what was fetched: one whose config names a type squeezenli converts, but that holds
    only an export, is not used (the repo's weights may be there to fetch)."""
    from squeezenli.models.config import CONVERTIBLE

    commit = _cached_commit(repo_id, revision)
    if commit is None:
        return None
    snapshot = repo_folder(repo_id) / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    try:
        config = _config_of(snapshot)
        choice = choose_files(_present(snapshot, onnx_file), config, onnx_file)
    except ModelError:
        return None
    if onnx_file is None and choice.weights in EXPORTS and config.get("model_type") in CONVERTIBLE:
        return None
    return _files(snapshot, choice, repo_id, commit, repo_folder(repo_id) / "squeezenli")


def _download(repo_id: str, revision: str, onnx_file: str | None, *, progress: bool) -> ModelFiles:
    """List the revision's files on the Hub, read its config, then fetch the chosen files
    into the cache."""
    import httpx2
    from huggingface_hub import HfApi, constants
    from huggingface_hub import errors as hf_errors
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    from squeezenli.models.config import read_config

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
        if CONFIG not in listed:
            raise ModelError(f"no {CONFIG} in the model's files")
        _remove_dead_partials(repo_id)
        (disable_progress_bars if not progress else enable_progress_bars)()
        # The requested revision (not info.sha), so the cache records refs/<revision>
        # and a later offline run can find the snapshot by the same name.
        config = _fetch(repo_id, CONFIG, revision)
        try:  # read before the other files are chosen: a torn one is fetched again here
            verify_blob(config, CONFIG)
        except DamagedDownloadError as err:
            log.warning("%s; downloading it again", err)
            _forget(config)
            config = _fetch(repo_id, CONFIG, revision)
        choice = choose_files(set(listed), read_config(config), onnx_file)
        models = [n for n in (choice.weights, choice.reference) if n and n.endswith(".onnx")]
        listed_data = {n for n in choice.names if n.startswith(data_prefixes(*models))}
        paths = {CONFIG: config}
        for name in choice.names:
            if name != CONFIG and name not in listed_data:
                paths[name] = _fetch(repo_id, name, revision)
        for model in models:  # the external data its graph refers to, not all that is listed
            for name in _referenced_data(paths[model], model):
                if name not in paths and name in listed:
                    paths[name] = _fetch(repo_id, name, revision)
        choice = replace(choice, names=[n for n in choice.names if n in paths])
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
    files = _files(folder, choice, repo_id, commit, repo_folder(repo_id) / "squeezenli")
    return replace(files, files=paths)


def _referenced_data(path: Path, name: str) -> list[str]:
    """The repo names of the external data files an ONNX file's tensors refer to (a file it
    does not refer to, as a stale `model.onnx_data.old` beside it, is not downloaded). A
    file onnx cannot read refers to nothing here, and is refused when it is built."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx's DecodeError and friends: the build names the damage
        return []
    folder = os.path.dirname(name)
    found = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            found.add(f"{folder}/{location}" if folder else location)
    return sorted(n for n in found if _safe_name(n))


def _fetch(repo_id: str, name: str, revision: str) -> Path:
    """One file into the cache, each download said in a line (INFO) before and after; what
    huggingface_hub refuses for this file is named."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, name, revision=revision)
    started = time.monotonic()
    try:
        if not isinstance(cached, str):  # off a terminal there is no bar: a line says it
            log.info("downloading %s from %s (once)", name, repo_id)
        path = Path(hf_hub_download(repo_id, name, revision=revision))
        if not isinstance(cached, str):
            size = path.stat().st_size
            seconds = time.monotonic() - started
            log.info("downloaded %s: %.1f MB in %.1f s", name, size / 1e6, seconds)
        return path
    except hf_errors.RemoteEntryNotFoundError:
        raise ModelError(
            f"the model's listing names {name}, but the server does not serve it (404): "
            "try again later, or choose other files (--onnx-file, --revision)"
        ) from None
    except ValueError as err:  # a size it will not download: "The file is too large ..."
        first = str(err).split(". ")[0].strip().rstrip(".")
        raise ModelError(f"cannot download {name}: {first or type(err).__name__}") from None


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


def cached_blob(path: Path) -> Path | None:
    """The blob a Hugging Face cache link points to (named by its hash), or None elsewhere."""
    real = Path(os.path.realpath(path))
    return real if real.parent.name == "blobs" and _BLOB.match(real.name) else None


def verify_blob(path: Path, name: str) -> None:
    """A cached download is named by its hash: a large file's blob by the sha256 of its
    bytes, a small file's by git's sha1 of a header and its bytes. Check the content still
    matches, so a torn or rotten download is fetched again instead of used. Large files are
    checked once per build, small ones (read at each load anyway) at each load."""
    blob = cached_blob(path)
    if blob is None:
        return
    if len(blob.name) == 64:
        digest = hashlib.sha256()
    elif len(blob.name) == 40:
        digest = hashlib.sha1(b"blob %d\0" % blob.stat().st_size, usedforsecurity=False)
    else:
        return
    with open(blob, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != blob.name:
        raise DamagedDownloadError(f"{path}: cached download does not match its hash", name)


def forget(files: ModelFiles, name: str) -> None:
    """Drop one damaged file of a cached snapshot (its link and its blob), so that resolving
    the model again downloads it afresh."""
    _forget(files.files[name])


def _forget(link: Path) -> None:
    blob = link.resolve()
    link.unlink(missing_ok=True)
    if blob.is_relative_to(hub_cache().resolve()):
        blob.unlink(missing_ok=True)
