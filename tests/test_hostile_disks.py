"""Full disks, read-only caches, killed writers and damaged cache files (issue 13): each ends
in one line that names the folder and what to do, and nothing a crash leaves behind outlives
the next run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import one_error, run_env, squeezenli

PAIR = ["A man plays a guitar.", "A person makes music."]


@contextlib.contextmanager
def small_filesystem(path: Path, size: str):
    """A tmpfs of the given size mounted at path (root only; skipped elsewhere)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            "cannot mount a size-limited tmpfs here (needs root): " + mounted.stderr.decode()
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _score(hub, home: Path, *extra: str, **env: str):
    return squeezenli(
        *PAIR,
        "-m",
        "acme/tiny-nli",
        "--precision",
        "fp32",
        *extra,
        HF_HOME=str(home),
        HF_ENDPOINT=hub.endpoint,
        **env,
    )


def _leftovers(home: Path) -> list[str]:
    return sorted(
        p.name
        for p in home.rglob("*")
        if p.name.endswith((".tmp", ".incomplete")) or ".ready-" in p.name
    )


def _fill(folder: Path) -> Path:
    """Take every free byte of folder's filesystem."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)
    return filler


def test_a_full_disk_during_download_is_named_and_cleared_next_time(hub, tmp_path):
    with small_filesystem(tmp_path / "fs", "1m") as fs:
        home = fs / "hf"
        home.mkdir()
        filler = _fill(fs)
        line = one_error(_score(hub, home))
        assert "no space left on the device" in line and "HF_HOME" in line
        filler.unlink()
        time.sleep(1.1)  # a torn ref file is recognised by its age (hub.py)
        done = _score(hub, home)
        assert done.returncode == 0, done.stderr
        assert _leftovers(home) == []


def test_a_full_disk_during_the_build_is_named_and_leaves_no_temp_file(hub, tmp_path):
    with small_filesystem(tmp_path / "fs", "2m") as fs:
        home = fs / "hf"
        done = squeezenli(
            "model",
            "download",
            "-m",
            "acme/tiny-nli",
            "--precision",
            "fp32",
            HF_HOME=str(home),
            HF_ENDPOINT=hub.endpoint,
        )
        assert done.returncode == 0, done.stderr
        build_dir = home / "hub" / "models--acme--tiny-nli" / "squeezenli"
        for path in build_dir.glob("*"):
            if path.is_file() and not path.name.startswith("."):
                path.unlink()
        filler = _fill(fs)
        line = one_error(_score(hub, home, HF_HUB_OFFLINE="1"))
        assert "no space left on the device" in line
        assert _leftovers(home) == []
        filler.unlink()
        assert _score(hub, home, HF_HUB_OFFLINE="1").returncode == 0


def test_a_read_only_cache_is_named_not_blamed_on_the_network(hub, tmp_path):
    with small_filesystem(tmp_path / "fs", "4m") as fs:
        remount = subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip("cannot remount read-only here")
        line = one_error(_score(hub, fs / "hf"))
        assert "Read-only file system" in line and "offline" not in line


def test_what_killed_writers_left_is_removed_by_the_next_run(hub, tmp_path):
    home = tmp_path / "hf"
    assert _score(hub, home).returncode == 0
    repo = home / "hub" / "models--acme--tiny-nli"
    dead = 2**22 + 12345  # above the kernel's largest pid: never a live process
    leftovers = [
        repo / "squeezenli" / f".abc-c2q1-fp32.onnx.{dead}.k2j4h1_x.tmp",
        repo / "blobs" / "0123abcd.1a2b3c4d.incomplete",
    ]
    for path in leftovers:
        path.write_bytes(b"torn")
    (repo / "squeezenli" / f".ready-{dead}-q8w7e6").mkdir()
    live = repo / "squeezenli" / f".abc.onnx.{os.getpid()}.zz9yy8xx.tmp"  # this test runs
    live.write_bytes(b"being written")
    done = _score(hub, home, "--precision", "int8")  # a new build takes the lock
    assert done.returncode == 0, done.stderr
    assert _leftovers(home) == [live.name]


def test_a_process_waiting_for_another_builder_says_so(tiny_nli_model, tmp_path):
    from filelock import FileLock

    from squeezenli.models.hub import _resolve_local

    env = run_env(HF_HOME=str(tmp_path / "hf"))
    # Named by the model folder's path, whatever the cache: ask the library which it is.
    key = _resolve_local(str(tiny_nli_model)).build_dir.name
    build_dir = tmp_path / "hf" / "hub" / "squeezenli-local" / key
    build_dir.mkdir(parents=True)
    lock = FileLock(str(build_dir / ".build.lock"))
    lock.acquire()
    child = subprocess.Popen(
        [sys.executable, "-m", "squeezenli", *PAIR, "-m", str(tiny_nli_model)]
        + ["--precision", "fp32"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(4)
        assert child.poll() is None  # still waiting
    finally:
        lock.release()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert f"waiting for another process building in {build_dir}" in err


def test_a_damaged_small_file_in_the_cache_is_fetched_again(hub, tmp_path):
    home = tmp_path / "hf"
    assert _score(hub, home).returncode == 0
    snapshot = next((home / "hub" / "models--acme--tiny-nli" / "snapshots").iterdir())
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        blob = (snapshot / name).resolve()
        data = blob.read_bytes()
        blob.write_bytes(data[: len(data) // 2])  # torn
        done = _score(hub, home)
        assert done.returncode == 0, done.stderr
        assert f"{name}: cached download does not match its hash; downloading it again" in (
            done.stderr
        )
        assert (snapshot / name).read_bytes() == data
    blob = (snapshot / "config.json").resolve()
    blob.write_bytes(b"{" + blob.read_bytes()[1:].replace(b'"', b"'", 1))  # flipped
    offline = _score(hub, home, HF_HUB_OFFLINE="1")
    line = one_error(offline)
    assert "HF_HUB_OFFLINE" in line


def test_a_size_mismatch_does_not_tell_a_cli_user_to_pass_force_download(tmp_path):
    from squeezenli.models.hub import describe_os_error

    err = OSError(
        "Consistency check failed: file should be of size 10 but has size 5 (x).\n"
        "This is usually due to network issues. Please retry with `force_download=True`."
    )
    text = describe_os_error(err, tmp_path)
    assert "force_download" not in text and "run the command again" in text
