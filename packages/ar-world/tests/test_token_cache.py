"""The token cache is replaced atomically: a rebuild that fails part-way never leaves a
truncated split beside a meta.json that describes it."""

import json
from pathlib import Path

import pytest
import torch

from wmkit.ar_world import token_cache
from wmkit.ar_world.token_cache import TokenCacheDataModule, build_token_cache
from wmkit.core.testing import ToyTokenizer
from wmkit.core.testing.toy_lit import MovingSquaresDataModule


def _data():
    return MovingSquaresDataModule(num_episodes=10, length=4, size=16, batch_size=4)


def _snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def _fails_part_way_through(calls_before_failure, monkeypatch):
    """Make ``save_file`` write a truncated file and raise, as a killed write would, after
    ``calls_before_failure`` good writes."""
    real = token_cache.save_file
    calls = []

    def save_file(tensors, path):
        calls.append(path)
        if len(calls) <= calls_before_failure:
            return real(tensors, path)
        real(tensors, path)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError("killed mid-write")

    monkeypatch.setattr(token_cache, "save_file", save_file)


@pytest.mark.parametrize("calls_before_failure", [0, 1])
def test_a_failed_rebuild_leaves_the_old_cache_whole(tmp_path, monkeypatch, calls_before_failure):
    old = build_token_cache(ToyTokenizer(patch=4, levels=2), _data(), tmp_path / "cache")
    before = _snapshot(old)
    _fails_part_way_through(calls_before_failure, monkeypatch)
    with pytest.raises(OSError, match="killed mid-write"):
        build_token_cache(ToyTokenizer(patch=4, levels=3), _data(), old)
    assert _snapshot(old) == before  # no truncated split, no temporary file left behind
    cached = TokenCacheDataModule(str(old), batch_size=4)
    cached.setup()  # the old cache still reads
    assert cached.meta["vocab_size"] == ToyTokenizer(patch=4, levels=2).vocab_size
    assert next(iter(cached.val_dataloader()))["tokens"].max() < cached.meta["vocab_size"]


def test_a_rebuild_stopped_before_meta_json_leaves_no_cache(tmp_path, monkeypatch):
    old = build_token_cache(ToyTokenizer(patch=4, levels=2), _data(), tmp_path / "cache")
    real_replace = token_cache.os.replace

    def replace(src, dst):
        if str(dst).endswith("meta.json"):
            raise OSError("killed before meta.json")
        return real_replace(src, dst)

    monkeypatch.setattr(token_cache.os, "replace", replace)
    with pytest.raises(OSError, match="killed before meta.json"):
        build_token_cache(ToyTokenizer(patch=4, levels=3), _data(), old)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="meta.json missing"):
        TokenCacheDataModule(str(old)).setup()
    build_token_cache(ToyTokenizer(patch=4, levels=3), _data(), old)  # rebuilt cleanly
    meta = json.loads((old / "meta.json").read_text())
    assert meta["vocab_size"] == ToyTokenizer(patch=4, levels=3).vocab_size
    assert not [p.name for p in old.iterdir() if p.name.startswith(".")]
    cached = TokenCacheDataModule(str(old), batch_size=4)
    cached.setup()
    assert isinstance(next(iter(cached.train_dataloader()))["tokens"], torch.Tensor)
