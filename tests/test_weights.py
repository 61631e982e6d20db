"""Weights are read without torch, and a pickle that would run code is refused."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from conftest import FIXTURES
from tinymodel import random_tensors, tiny_config

from squeezenli.errors import ModelError, UnsafeModelFileError
from squeezenli.models.weights import load_weights


def test_torch_zip_gives_the_same_tensors_as_safetensors(tiny_model):
    from_bin = load_weights(FIXTURES / "tiny_pytorch_model.bin")
    from_st = load_weights(tiny_model / "model.safetensors")
    assert set(from_bin) == set(from_st) == set(random_tensors(tiny_config()))
    for name, array in from_st.items():
        assert from_bin[name].dtype == np.float32
        np.testing.assert_array_equal(from_bin[name], array, err_msg=name)


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _zip_with_pickle(path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")


def test_a_pickle_that_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "pytorch_model.bin"
    _zip_with_pickle(evil, pickle.dumps({"w": _RunsACommand(marker)}, protocol=2))
    with pytest.raises(UnsafeModelFileError, match="system"):
        load_weights(evil)
    assert not marker.exists()
    # Plain pickle would have run it: the test's payload is real.
    pickle.loads(pickle.dumps(_RunsACommand(marker), protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("target", ["builtins eval", "subprocess Popen", "torch load"])
def test_any_global_outside_the_allow_list_is_refused(tmp_path, target):
    module, name = target.split()
    payload = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\nq\x00."
    path = tmp_path / "pytorch_model.bin"
    _zip_with_pickle(path, payload)
    with pytest.raises(UnsafeModelFileError, match=f"{module}.{name}"):
        load_weights(path)


def test_a_legacy_or_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"\x80\x02not a zip")
    with pytest.raises(ModelError, match="not a zip checkpoint"):
        load_weights(path)
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(io.BytesIO(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage").getvalue())
    with pytest.raises(ModelError, match="cannot read weights"):
        load_weights(broken)
