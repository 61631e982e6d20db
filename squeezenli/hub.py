"""Find a model's files: a local folder, or a Hub repo brought into the Hugging Face cache.

Downloads go through huggingface_hub, so HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and
HF_HUB_OFFLINE behave as in every other Hugging Face tool. A pinned commit that is already
cached is used without any network round trip; the downloader is imported only when needed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

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
    """Local paths of a model's files, downloading them into the cache when needed."""
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
    return _download(model, revision, progress=progress)


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
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub import errors as hf_errors
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    where = f"{repo_id}@{revision}"
    try:
        info = HfApi().model_info(repo_id, revision=revision)
        listed = [s.rfilename for s in (info.siblings or [])]
        unsafe = [name for name in listed if not _safe_name(name)]
        if unsafe:
            raise ModelError(f"{where}: the server listed an unsafe file name: {unsafe[0]!r}")
        chosen = choose_files(set(listed))
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
    except (httpx2.HTTPError, OSError) as err:
        raise ModelError(
            f"cannot download {where} from {_endpoint()}: {err or type(err).__name__} "
            "(offline? a cached model works with HF_HUB_OFFLINE=1)"
        ) from None
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
