"""What squeezenli keeps in the Hugging Face cache, and removing it again.

Downloads live in the standard layout (`models--owner--name/{blobs,snapshots,refs}`), shared
with every Hugging Face tool; what squeezenli builds lives beside them in a `squeezenli/`
folder of the repo's cache entry (local-folder models: `squeezenli-local/`). Removal only ever
deletes inside the cache, and downloads only when asked.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from squeezenli.errors import InputError, ModelError
from squeezenli.models.build import BUILT_NAME, built_precision
from squeezenli.models.hub import hub_cache, repo_folder, validate_repo_id

BUILD_FOLDER = "squeezenli"
LOCAL_BUILDS = "squeezenli-local"


@dataclass(frozen=True)
class CachedModel:
    """One repo in the cache: its downloaded revisions and squeezenli's builds."""

    repo_id: str
    folder: Path
    revisions: list[str]
    downloaded_bytes: int
    built: list[Path]  # the ONNX models built from the weights, one per precision
    built_bytes: int  # with the onnxruntime-ready copies made from them

    def as_dict(self) -> dict:
        return {
            "model": self.repo_id,
            "folder": str(self.folder),
            "revisions": self.revisions,
            "downloaded_bytes": self.downloaded_bytes,
            "built": [path.name for path in self.built],
            "precisions": [built_precision(path) for path in self.built],
            "built_bytes": self.built_bytes,
        }


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _repo_id(folder: Path) -> str:
    return folder.name.removeprefix("models--").replace("--", "/", 1)


def _describe(folder: Path) -> CachedModel:
    snapshots = folder / "snapshots"
    builds = folder / BUILD_FOLDER
    return CachedModel(
        repo_id=_repo_id(folder),
        folder=folder,
        revisions=sorted(p.name for p in snapshots.iterdir()) if snapshots.is_dir() else [],
        downloaded_bytes=_size(folder / "blobs") if (folder / "blobs").is_dir() else 0,
        built=_built_models(builds),
        built_bytes=_size(builds) if builds.is_dir() else 0,
    )


def _built_models(folder: Path) -> list[Path]:
    """One file per model built here (by key and precision): its ready copy, what runs open,
    where one was made (builds are removed once it is, build.ensure_runnable), else the build."""
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.glob("*.onnx")):
        named = BUILT_NAME.match(path.name)
        if named is not None and (named["ready"] or (named[1], named[2]) not in found):
            found[named[1], named[2]] = path
    return sorted(found.values())


def cached_models(include_all: bool = False) -> list[CachedModel]:
    """Repos squeezenli has built models for; with include_all, every model repo cached."""
    cache = hub_cache()
    if not cache.is_dir():
        return []
    folders = sorted(p for p in cache.glob("models--*") if p.is_dir())
    return [
        _describe(folder) for folder in folders if include_all or (folder / BUILD_FOLDER).is_dir()
    ]


def local_builds() -> list[Path]:
    """ONNX models built from local folders (keyed by the folder's path)."""
    return [
        p
        for folder in sorted((hub_cache() / LOCAL_BUILDS).glob("*"))
        for p in _built_models(folder)
    ]


def _inside_cache(path: Path) -> Path:
    """The path, resolved, if it lies inside the cache; otherwise a refusal."""
    cache = hub_cache().resolve()
    real = path.resolve()
    if real == cache or not real.is_relative_to(cache):
        raise ModelError(f"refusing to delete {path}: not inside the cache {cache}")
    return real


def _delete(path: Path) -> int:
    if not path.exists():
        return 0
    real = _inside_cache(path)
    freed = _size(real) if real.is_dir() else real.stat().st_size
    shutil.rmtree(real) if real.is_dir() else real.unlink()
    return freed


def remove_model(repo_id: str, *, downloads: bool = False) -> int:
    """Delete squeezenli's builds for a repo (and, with downloads, its whole cache entry,
    which other Hugging Face tools share); the bytes freed. Nothing to delete is an error."""
    validate_repo_id(repo_id)
    folder = repo_folder(repo_id)
    target = folder if downloads else folder / BUILD_FOLDER
    if not target.exists():
        what = "cached" if downloads else "built by squeezenli"
        raise InputError(f"nothing {what} for {repo_id} in {hub_cache()}")
    return _delete(target)


def remove_local_builds() -> int:
    """Delete every ONNX model built from a local folder; the bytes freed."""
    return _delete(hub_cache() / LOCAL_BUILDS)
