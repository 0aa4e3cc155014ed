"""Token cache: encode a dataset once with the frozen tokenizer, then train on the ids.

``build_token_cache`` runs a DataModule's loaders through the tokenizer and writes
``{split}.safetensors`` (``tokens`` ``int32 [N, T, h, w]``, ``actions``, ``rewards``,
``dones``) and ``meta.json`` (action spec, vocab size, grid). ``TokenCacheDataModule`` serves
them as batches with a ``tokens`` key, which :class:`~wmkit.ar_world.lit.ARWorldModelModule`
uses instead of encoding frames. A random-clip training loader (``EpisodeDataModule``) is
cached for one pass: one epoch's worth of clips.

A rebuild replaces a cache atomically: the splits are written to hidden temporary files
beside it, the old ``meta.json`` is removed, the files are renamed into place and the new
``meta.json`` is written last (itself through a rename). A rebuild that stops part-way leaves
either the old cache whole or a directory without ``meta.json`` (no cache, to be rebuilt),
never a truncated split beside a ``meta.json`` that describes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from wmkit.core import ActionSpec, Batch, Tokenizer, load_pretrained
from wmkit.core.data.resumable_loader import ResumableLoader, ResumableShuffleSampler

__all__ = ["TokenCacheDataModule", "build_token_cache"]

SPLITS = ("train", "val", "test")


@torch.no_grad()
def build_token_cache(
    tokenizer: Tokenizer | str | os.PathLike,
    datamodule: L.LightningDataModule,
    out: str | os.PathLike,
    splits: tuple[str, ...] = SPLITS,
    device: str = "cpu",
) -> Path:
    """Encode every clip of ``datamodule``'s ``splits`` and write the cache to ``out``."""
    tok: Any = load_pretrained(tokenizer) if isinstance(tokenizer, str | os.PathLike) else tokenizer
    if not isinstance(tok, Tokenizer) or tok.kind != "discrete":
        raise TypeError(f"tokenizer must be a discrete wmkit Tokenizer; got {type(tok).__name__}")
    if hasattr(tok, "future_tokens_shape"):
        raise ValueError(
            "token caches hold per-frame tokens; a compressive tokenizer's context/future split "
            "depends on the clip, so train compressive world models on frames"
        )
    if hasattr(tok, "to"):
        tok = tok.to(device).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    datamodule.setup("fit")
    spec = getattr(datamodule, "action_spec", None)
    grid: list[int] | None = None
    staged: dict[Path, Path] = {}  # final path -> its temporary file
    try:
        for split in splits:
            grid = _encode_split(tok, datamodule, split, device, out, staged)
        meta = {
            "vocab_size": tok.vocab_size,
            "grid": grid,
            "action_spec": spec.to_dict() if isinstance(spec, ActionSpec) else None,
            "tokenizer": type(tok).__qualname__,
        }
        meta_path = out / "meta.json"
        meta_path.unlink(missing_ok=True)  # until the new one lands, the directory is no cache
        for final, tmp in staged.items():
            os.replace(tmp, final)
        staged.clear()
        tmp = _temporary(meta_path)
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        os.replace(tmp, meta_path)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    return out


def _temporary(path: Path) -> Path:
    """A hidden file beside ``path`` (same directory, so ``os.replace`` is a rename)."""
    return path.with_name(f".{path.name}.tmp")


def _encode_split(
    tok: Any,
    datamodule: L.LightningDataModule,
    split: str,
    device: str,
    out: Path,
    staged: dict[Path, Path],
) -> list[int]:
    """Encode ``split`` into a temporary file recorded in ``staged``; returns the token grid."""
    loader = getattr(datamodule, f"{split}_dataloader")()
    parts: dict[str, list[Tensor]] = {
        "tokens": [], "actions": [], "rewards": [], "dones": [], "step_mask": []
    }  # fmt: skip
    grid: list[int] = []
    for raw in loader:
        batch = Batch.coerce(raw, require=("frames", "actions", "rewards"))
        tokens = tok.encode(batch.frames.to(device)).values.cpu()  # [B, T, h, w]
        grid = list(tokens.shape[2:])
        parts["tokens"].append(tokens.to(torch.int32))
        parts["actions"].append(batch.actions)
        rewards = batch.rewards.float()
        parts["rewards"].append(rewards)
        parts["dones"].append(
            torch.zeros_like(rewards) if batch.dones is None else batch.dones.float()
        )
        mask = batch.step_mask
        parts["step_mask"].append(
            torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask.bool()
        )
    if not parts["tokens"]:
        raise ValueError(f"the {split} loader yielded no batches")
    final = out / f"{split}.safetensors"
    staged[final] = _temporary(final)
    save_file({k: torch.cat(v).contiguous() for k, v in parts.items()}, staged[final])
    return grid


class TokenCacheDataModule(L.LightningDataModule):
    """Batches ``{"tokens", "actions", "rewards", "dones", "step_mask"}`` from a
    ``build_token_cache`` dir (caches built before ``step_mask`` existed read as all-valid).

    Args:
        path: the cache directory.
        batch_size: clips per batch.
        num_workers: DataLoader workers.
        seed: seed of the training order (a new permutation every epoch; a run resumed
            mid-epoch goes on with the same order).
    """

    def __init__(self, path: str, batch_size: int = 8, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, TensorDataset] = {}

    @property
    def meta(self) -> dict[str, Any]:
        meta_path = Path(self.hparams.path) / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no token cache at {self.hparams.path} (meta.json missing)")
        return json.loads(meta_path.read_text(encoding="utf-8"))

    @property
    def action_spec(self) -> ActionSpec | None:
        spec = self.meta.get("action_spec")
        return ActionSpec.from_dict(spec) if spec else None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.meta  # noqa: B018 (checks the directory)
        for split in SPLITS:
            file = Path(self.hparams.path) / f"{split}.safetensors"
            if file.is_file():
                d = load_file(str(file))
                mask = d.get("step_mask", torch.ones_like(d["rewards"], dtype=torch.bool))
                self.splits[split] = TensorDataset(
                    d["tokens"], d["actions"], d["rewards"], d["dones"], mask
                )

    @staticmethod
    def _collate(items: list[tuple[Tensor, ...]]) -> dict[str, Tensor]:
        tokens, actions, rewards, dones, mask = (torch.stack(x) for x in zip(*items))
        return {"tokens": tokens.long(), "actions": actions, "rewards": rewards, "dones": dones,
                "step_mask": mask}  # fmt: skip

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.splits:
            raise FileNotFoundError(f"the token cache at {self.hparams.path} has no {split} split")
        data = self.splits[split]
        common = {
            "batch_size": self.hparams.batch_size,
            "num_workers": self.hparams.num_workers,
            "collate_fn": self._collate,
        }
        if not shuffle:
            return DataLoader(data, **common)
        # shuffled per epoch, shared between DDP ranks, and resumable mid-epoch (core)
        sampler = ResumableShuffleSampler(data, self.hparams.seed)
        return ResumableLoader(data, sampler=sampler, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
