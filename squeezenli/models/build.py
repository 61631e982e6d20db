"""Build the ONNX model for a resolved model once, and cache it beside the download.

A build is keyed by everything it is made from: the weights' content, config.json and the
tokenizer files (which decide the measurements stored beside it), the converter and
quantizer versions and the precision. So an edited config, weights replaced with the same
size and time, or a new commit with a new config never pick up a stale file. Builds are
written to a temporary file and renamed, and each carries a content hash recorded when it
was written and checked when it is loaded, so neither a crash nor bit rot serves a wrong model.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import orjson

from squeezenli.errors import DamagedModelError, InputError, ModelError
from squeezenli.models.atomic import atomic_path, remove_dead_temps, scratch_dir
from squeezenli.models.config import parse_config, read_config
from squeezenli.models.convert import CONVERTER_VERSION
from squeezenli.models.hub import (
    CONFIG,
    ModelFiles,
    cached_blob,
    data_prefixes,
    describe_os_error,
    verify_blob,
)
from squeezenli.models.int8_kernels import EXACT_SUFFIX, needs_exact_kernels, saturates, settings
from squeezenli.models.quantize import QUANTIZER_VERSION

PRECISIONS = ("fp32", "int8")
# In every build's name: builds by other versions are pruned after a new build.
BUILD_TAG = f"c{CONVERTER_VERSION}q{QUANTIZER_VERSION}"
# The small files a build (or what is measured on it) depends on, besides the weights.
KEYED_FILES = (CONFIG, "tokenizer.json", "vocab.txt", "tokenizer_config.json")
log = logging.getLogger("squeezenli")
_MEMO = ".content-hashes.json"
_KERNELS_MEMO = ".int8-saturates.json"  # export content -> whether its weights may saturate
LOCK_NOTICE_S = 1.0  # a wait for another builder longer than this is announced


def file_digest(*paths: Path) -> str:
    """xxh3-128 over the files' bytes, mapped: ~15 ms for a 130 MB model (sha256: ~100 ms)."""
    import mmap

    import xxhash

    digest = xxhash.xxh3_128()
    for path in paths:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size:
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
                    digest.update(view)
        digest.update(b"\0")
    return digest.hexdigest()


def content_id(path: Path, build_dir: Path) -> str:
    """What identifies a weights file's content. A cache blob is named by its sha256. A local
    file is hashed, and the hash remembered against its size, times and inode; replacing or
    editing it changes its ctime, which no copy tool can set back, so it is hashed again."""
    blob = cached_blob(path)
    if blob is not None:
        return blob.name
    real = Path(os.path.realpath(path))
    stat = real.stat()
    seen = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}:{stat.st_dev}"
    memo_path = build_dir / _MEMO
    memo = _read_memo(memo_path)
    entry = memo.get(str(real))
    if isinstance(entry, list) and len(entry) == 2 and entry[0] == seen:
        return str(entry[1])
    digest = file_digest(real)
    memo[str(real)] = [seen, digest]
    with contextlib.suppress(OSError), atomic_path(memo_path) as tmp:
        tmp.write_bytes(orjson.dumps(memo))
    return digest


def _read_memo(path: Path) -> dict:
    """A JSON object remembered in the cache; an unreadable or damaged one is empty."""
    try:
        memo = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return memo if isinstance(memo, dict) else {}


def build_key(files: ModelFiles) -> str:
    """A short hash of everything a build is made from (module docstring)."""
    digest = hashlib.sha256(BUILD_TAG.encode())
    for name in files.large_files():
        digest.update(f"\0{name}\0{content_id(files.files[name], files.build_dir)}".encode())
    for name in KEYED_FILES:
        path = files.path(name)
        digest.update(f"\0{name}\0".encode())
        if path is not None:
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def verify_downloads(files: ModelFiles) -> None:
    """Check the small downloaded files (config, tokenizer) against their hashes."""
    large = files.large_files()
    for name, path in files.files.items():
        if name not in large:
            verify_blob(path, name)


def _model_parts(model: Path) -> list[Path]:
    """A model file and its side file of weights, when it has one."""
    side = model.with_name(model.name + ".data")
    return [model, side] if side.exists() else [model]


def _export_parts(model: Path) -> list[Path]:
    """A downloaded export and its files of external data (`model.onnx_data`, ...)."""
    prefixes = data_prefixes(model.name)
    try:
        sides = sorted(p for p in model.parent.iterdir() if p.name.startswith(prefixes))
    except OSError:
        sides = []
    return [model, *sides]


def _digest_path(model: Path) -> Path:
    return model.with_name(model.name + ".xxh3")


def _record_digest(model: Path, *parts: Path) -> None:
    """Write the hash of parts (a model being written, its side file) that verify_model checks
    for model; done before the model is renamed into place."""
    with atomic_path(_digest_path(model)) as tmp:
        tmp.write_text(file_digest(*parts))


def verify_model(model: Path, build_dir: Path) -> None:
    """A model built here must hash as it did when it was written: bit rot, a torn copy or
    an edit is caught here, and the model built again, instead of scoring with it. A
    downloaded export (outside build_dir) carries no recorded hash and is not checked."""
    if model.parent != build_dir:
        return
    try:
        expected = _digest_path(model).read_text().strip()
        actual = file_digest(*_model_parts(model))
    except OSError as err:
        raise DamagedModelError(f"{model}: cannot verify the built model ({err})") from None
    if actual != expected:
        raise DamagedModelError(f"{model}: the built model does not match its recorded hash")


def built_path(files: ModelFiles, precision: str, key: str | None = None) -> Path:
    """Where the model built from these files in this precision lives (key: build_key)."""
    return files.build_dir / f"{key or build_key(files)}-{BUILD_TAG}-{precision}.onnx"


def measurement_path(files: ModelFiles, precision: str, name: str) -> Path:
    """Where a measurement of a build is stored: beside it, named by the same key, so a new
    build is measured anew (and pruned or removed with it)."""
    built = built_path(files, precision)
    return built.with_name(f"{built.name.removesuffix('.onnx')}.{name}.json")


def is_export(files: ModelFiles) -> bool:
    return files.weights_name.endswith(".onnx")


@contextlib.contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Held while building: of several processes starting together on a cold cache, one
    builds and the others wait (saying so), then find the finished file. Whoever holds it
    first removes what killed builders left behind."""
    from filelock import FileLock, Timeout

    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(build_dir / ".build.lock"))
        try:
            lock.acquire(timeout=LOCK_NOTICE_S)
        except Timeout:
            log.warning(
                "waiting for another process building in %s (lock %s)",
                build_dir,
                lock.lock_file,
            )
            lock.acquire()
    except OSError as err:
        raise ModelError(describe_os_error(err, build_dir)) from None
    try:
        remove_dead_temps(build_dir)
        yield
    finally:
        lock.release()


def model_paths(files: ModelFiles, key: str | None = None) -> dict[str, Path]:
    """Where each precision's ONNX model is, built or not: squeezenli's builds; a repo's
    export as fp32 (and squeezenli's int8 of it); or a variant the repo ships as int8, beside
    its export as fp32."""
    if files.reference_name is not None:
        return {"fp32": files.files[files.reference_name], "int8": files.files[files.weights_name]}
    key = key or build_key(files)
    paths = {precision: built_path(files, precision, key) for precision in PRECISIONS}
    if is_export(files):
        paths["fp32"] = files.files[files.weights_name]
    return paths


def _path_of(files: ModelFiles, precision: str) -> Path:
    """model_paths(files)[precision], refusing a precision that is none of PRECISIONS."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    return model_paths(files)[precision]


def existing_models(files: ModelFiles) -> dict[str, Path]:
    """Each precision's model as it is in the cache now: its ready copy (what runs open) if
    made, else its build or download if there is one; nothing is built."""
    found = {}
    for precision, path in model_paths(files).items():
        if path.parent != files.build_dir and not path.exists():
            continue  # a download not fetched: no copy of it either
        ready = ready_path(path, files.build_dir)
        if ready.exists() or path.exists():
            found[precision] = ready if ready.exists() else path
    return found


def ensure_onnx(files: ModelFiles, precision: str = "fp32") -> Path:
    """Path of a built ONNX model for these files and precision, building it if needed. Runs
    open its ready copy (ensure_runnable), which replaces the build once made."""
    target = _path_of(files, precision)
    if target.exists():
        return target
    with build_lock(files.build_dir):
        return build_locked(files, precision)


def build_locked(files: ModelFiles, precision: str) -> Path:
    """ensure_onnx for a caller holding build_lock: what it reads (a measurement, a ready
    copy being made) cannot be removed by another process's ensure_runnable meanwhile."""
    # Keyed again under the lock: the files may have changed while it was awaited, and a
    # build of the new files must not be filed under the old files' key.
    key = build_key(files)
    paths = model_paths(files, key)
    fp32, target = paths["fp32"], paths[precision]
    if not fp32.exists():  # another process may have built it while we waited
        log.info("building the fp32 ONNX model from %s (once)", files.weights_name)
        _build_fp32(files, fp32)
    if not target.exists():
        log.info("quantizing it to %s (once)", precision)
        _quantize(fp32, target)
    if build_key(files) != key:  # changed while being read: what was built is no one's
        for path in files.build_dir.glob(f"{key}-*"):
            path.unlink(missing_ok=True)
        raise ModelError(
            f"the model's files in {files.folder} changed while it was being built; "
            "run again once they are in place"
        )
    if files.revision is None:  # a local folder: builds of its earlier contents are dead
        _prune_stale(files.build_dir, keep=key)
    return target


def ensure_runnable(files: ModelFiles, precision: str) -> Path:
    """The onnxruntime-ready copy of this precision's model, made if needed: what every run
    opens. It is the model as onnxruntime optimizes it, with its weights in a side file that
    the next start maps from disk instead of parsing and copying: creating the session drops
    from ~0.26 s to ~0.06 s (int8) and ~0.11 s (fp32) on the full-size model. Once it exists,
    squeezenli's own builds of these files are removed (drop_builds): no later run reads them,
    and keeping them tripled the cache (739 MB for a 204 MB download); a run that needs one
    again builds it from the weights (full-size: ~2.5 s fp32, ~7.5 s more for int8)."""
    ready = ready_path(_path_of(files, precision), files.build_dir)
    if ready.exists():
        remove_dead_temps(files.build_dir)  # a killed builder's, though nothing builds now
        return ready
    with build_lock(files.build_dir):
        # Looked for again under the lock: a process it waited for may have made the copy and
        # removed the builds, which must not be made again for nothing.
        ready = ready_path(_path_of(files, precision), files.build_dir)
        if not ready.exists():
            built = build_locked(files, precision)
            ready = ready_path(built, files.build_dir)
            _write_ready(built, files.build_dir, ready)
            _prune_stale(files.build_dir)
        drop_builds(files)
    return ready


def drop_builds(files: ModelFiles, ready_only: bool = False) -> None:
    """Remove squeezenli's own builds of these files (never a download), keeping their ready
    copies and measurements (`ready_only`: only the builds whose ready copy exists, as after
    a measurement, which builds both); called with build_lock held, so no measurement is
    reading them."""
    key = build_key(files)
    for precision, path in model_paths(files, key).items():
        if path != built_path(files, precision, key):
            continue
        if ready_only and not ready_path(path, files.build_dir).exists():
            continue
        for part in (path, _digest_path(path), *_model_parts(path)[1:]):
            part.unlink(missing_ok=True)


def _save(target: Path, write, *sides: Path) -> None:
    """write(tmp) a model beside target, record its hash (with its side file's, already
    written), then rename it into place."""
    with atomic_path(target) as tmp:
        write(tmp)
        _record_digest(target, tmp, *sides)


def _build_fp32(files: ModelFiles, target: Path) -> None:
    import onnx

    from squeezenli.models.convert import build_model
    from squeezenli.models.weights import load_weights

    config = parse_config(read_config(files.files[CONFIG]), origin=str(files.files[CONFIG]))
    verify_blob(files.files[files.weights_name], files.weights_name)
    tensors = load_weights(files.files[files.weights_name])
    # The weights go to the side file as they are converted (convert._Graph). It is named by
    # no model until the model is renamed into place after it, so a crash leaves nothing
    # that loads; a leftover one is replaced.
    side = target.with_name(target.name + ".data")
    try:
        side.unlink(missing_ok=True)
        try:
            with open(side, "wb") as handle:
                model = build_model(config, tensors, (handle, side.name))
                del tensors
                handle.flush()
                os.fsync(handle.fileno())
            _save(target, lambda tmp: onnx.save_model(model, str(tmp)), side)
        except BaseException:
            side.unlink(missing_ok=True)
            raise
    except OSError as err:
        raise ModelError(
            f"cannot write the built model: {describe_os_error(err, target.parent)}"
        ) from None


def _quantize(source: Path, target: Path) -> None:
    """int8 with per-row activation scales (quantize.py), from the fp32 model."""
    from squeezenli.models.quantize import quantize_file

    verify_model(source, target.parent)
    _check_export(source)
    try:
        _save(target, lambda tmp: quantize_file(source, tmp))
    except OSError as err:
        raise ModelError(
            f"cannot write the quantized model: {describe_os_error(err, target.parent)}"
        ) from None
    except Exception as err:  # onnx's DecodeError and friends: the fp32 model is damaged
        raise DamagedModelError(f"{source}: cannot read ONNX model: {err}") from None


def _check_export(source: Path) -> None:
    """An export that squeezenli cannot run is refused before it is quantized (what it
    takes and gives, from its graph; the tensors are not read)."""
    import onnx

    from squeezenli.models.convert import check_interface

    try:
        graph = onnx.load(str(source), load_external_data=False).graph
    except Exception:  # onnx's DecodeError and friends: quantizing names the damage
        return
    initializers = {t.name for t in graph.initializer}
    inputs = {i.name for i in graph.input if i.name not in initializers}
    check_interface(inputs, [o.name for o in graph.output], source)


def ready_path(built: Path, build_dir: Path) -> Path:
    """Where the onnxruntime-ready copy of a model lives: named by the built model (an export
    by its content), by the onnxruntime version that optimized it, the only one that may
    load it, and by the int8 kernels it was made for (exact_kernels)."""
    import onnxruntime

    stem = built.stem if built.parent == build_dir else _export_stem(built, build_dir)
    suffix = EXACT_SUFFIX if exact_kernels(built, build_dir) else ""
    return build_dir / f"{stem}.ort{onnxruntime.__version__}{suffix}.onnx"


def _export_stem(export: Path, build_dir: Path) -> str:
    """A downloaded export is named model.onnx: it is known by its content."""
    parts = hashlib.sha256()
    for part in _export_parts(export):
        if not os.path.isfile(part):  # a FIFO would block its reader (and onnxruntime) for ever
            raise ModelError(f"{part}: not a regular file; an export's files must be files")
        parts.update(f"{part.name}\0{content_id(part, build_dir)}\0".encode())
    return f"{parts.hexdigest()[:16]}-{BUILD_TAG}-export"


def exact_kernels(model: Path, build_dir: Path) -> bool:
    """Whether onnxruntime must run its exact int8 kernels for this model on this CPU
    (int8_kernels.py): never where VNNI is; never for squeezenli's own builds, whose int8
    weights cannot saturate; for a downloaded export whose weights may, and for the ready
    copy made of it (named so)."""
    if not needs_exact_kernels():
        return False
    if model.parent == build_dir:
        return model.name.endswith(f"{EXACT_SUFFIX}.onnx")
    return _export_saturates(model, build_dir)


def kernel_settings(model: Path, build_dir: Path) -> dict[str, str]:
    """The onnxruntime session config entries that exact_kernels asks for."""
    return settings(exact_kernels(model, build_dir))


def _export_saturates(export: Path, build_dir: Path) -> bool:
    """int8_kernels.saturates for a downloaded export, read once and remembered by content
    (a few hundred ms for a large export; every start asks). An export that cannot be read
    is taken to saturate: the exact kernels are right for every model."""
    import onnx

    key = _export_stem(export, build_dir)
    memo_path = build_dir / _KERNELS_MEMO
    memo = _read_memo(memo_path)
    if isinstance(memo.get(key), bool):
        return memo[key]
    try:
        found = saturates(onnx.load(str(export)))
    except Exception:  # onnx's DecodeError, a missing external file: exact is always right
        return True
    memo[key] = found
    with contextlib.suppress(OSError), atomic_path(memo_path) as tmp:
        tmp.write_bytes(orjson.dumps(memo))
    return found


# The versions in a build's name (converter, quantizer) and in a ready copy's (onnxruntime).
_VERSIONS_IN_NAME = re.compile(r"-c(\d+)(?:q(\d+))?-")
_RUNTIME_IN_NAME = re.compile(rf"\.ort([0-9][0-9.]*?)(?:{re.escape(EXACT_SUFFIX)})?\.onnx")
# The whole name of a build (built_path) or of a ready copy (ready_path): key, versions, then
# the precision ("export": a ready copy of a downloaded export).
BUILT_NAME = re.compile(
    r"([0-9a-f]{16})-c\d+(?:q\d+)?-(fp32|int8|export)(?P<ready>\.ort[^/]*)?\.onnx"
)


def built_precision(path: Path) -> str:
    """What a file named as BUILT_NAME holds: fp32, int8, or export (a copy of a download)."""
    named = BUILT_NAME.match(path.name)
    return named[2] if named else "?"


def _prune_stale(build_dir: Path, keep: str | None = None) -> None:
    """After an upgrade, builds by older versions and ready copies made by older onnxruntime
    versions are dead weight (hundreds of MB): remove them; with keep, every other build too.
    Those of newer versions stay: two environments sharing a cache (an old squeezenli in one,
    a new one in another) would otherwise rebuild each other's builds on every start."""
    import onnxruntime

    ours = (CONVERTER_VERSION, QUANTIZER_VERSION)
    runtime = _numbers(onnxruntime.__version__)
    for path in build_dir.glob("*-c*-*"):
        tag = _VERSIONS_IN_NAME.search(path.name)
        old_version = tag is not None and (int(tag[1]), int(tag[2] or 0)) < ours
        made_by = _RUNTIME_IN_NAME.search(path.name)
        old_runtime = made_by is not None and _numbers(made_by[1]) < runtime
        other_key = keep is not None and not path.name.startswith(keep)
        if old_version or old_runtime or other_key:
            path.unlink(missing_ok=True)


def _numbers(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version string ("1.32.0" -> (1, 32, 0))."""
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])


def _write_ready(built: Path, build_dir: Path, target: Path) -> None:
    """Write the ready copy (ensure_runnable). The side file and the hash are renamed into
    place before the model that names them, so a crash leaves no model whose weights are
    missing."""

    import onnxruntime as ort

    from squeezenli.models.convert import check_interface

    verify_model(built, build_dir)
    data_name = target.name + ".data"
    try:
        with scratch_dir(build_dir) as scratch:
            options = ort.SessionOptions()
            options.log_severity_level = 4
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(scratch / target.name)
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", data_name
            )
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
            )
            for key, value in kernel_settings(built, build_dir).items():
                options.add_session_config_entry(key, value)
            # This session only writes the graph: packing its weights for the GEMM kernels
            # (a second copy of them) would be thrown away.
            options.add_session_config_entry("session.disable_prepacking", "1")
            try:
                made = ort.InferenceSession(str(built), options, providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime's own Fail/InvalidProtobuf types
                raise DamagedModelError(f"{built}: cannot load ONNX model: {err}") from None
            # An export squeezenli cannot run is refused naming the file the user gave.
            inputs = {i.name for i in made.get_inputs()}
            check_interface(inputs, [o.name for o in made.get_outputs()], built)
            _record_digest(scratch / target.name, *_model_parts(scratch / target.name))
            # The model last; no side file when no weight is big enough to go there.
            names = [data_name, _digest_path(target).name, target.name]
            names = [n for n in names if (scratch / n).exists()]
            for name in names:
                with open(scratch / name, "rb+") as handle:
                    os.fsync(handle.fileno())
            for name in names:
                os.replace(scratch / name, build_dir / name)
    except OSError as err:
        raise ModelError(
            f"cannot write the optimized model: {describe_os_error(err, build_dir)}"
        ) from None


def discard_ready(ready: Path) -> None:
    """Remove a ready copy, its side file and its hash (the next start makes them again)."""
    for path in (ready, ready.with_name(ready.name + ".data"), _digest_path(ready)):
        path.unlink(missing_ok=True)


def discard_builds(files: ModelFiles) -> None:
    """Remove every model built from these files by this version, ready copies included."""
    key = build_key(files)
    with build_lock(files.build_dir):
        for path in files.build_dir.glob(f"{key}-*"):
            path.unlink(missing_ok=True)
