"""`PatchVQModule`: fits a :class:`~wmkit.tokenizers.patch_vq.PatchVQTokenizer` in Lightning
(``wmkit tokenizer fit``).

Before the first step, the first ``seed_batches`` training batches seed the codebook by
k-means (:meth:`PatchVQTokenizer.fit`, on rank 0 and broadcast under DDP, so every rank
starts from the same codebook). The seed is what most of the codebook's quality comes from,
so it should see varied scenes: on Crafter, a seed from many single frames reconstructs
held-out frames better, with more ids unchanged from frame to frame, than one from a few
consecutive clips (the test checks that direction on its fixture). From there each batch
takes one Adam step on the k-means objective (the mean squared distance of each patch to its
nearest code: minibatch k-means by gradient steps, which DDP averages across ranks like any
gradient). Every ``reseed_every`` steps the codes that no patch chose since the last check
are moved onto the batch's worst-fitted patches, so no code stays dead. Validation and test
log PSNR, SSIM and the codes in use, and write real|reconstruction GIFs.
"""

from __future__ import annotations

from itertools import islice

import lightning as L
import torch
from torch import Tensor

from wmkit.core import Batch
from wmkit.tokenizers.lit_mixin import TokenizerLitMixin
from wmkit.tokenizers.metrics import psnr, ssim
from wmkit.tokenizers.patch_vq import PatchVQTokenizer

__all__ = ["PatchVQModule"]


class PatchVQModule(TokenizerLitMixin, L.LightningModule):
    """Lightning fitting of a patch-VQ tokenizer.

    Args:
        tokenizer: the tokenizer (injected; YAML gives its ``class_path``/``init_args``).
        lr: Adam learning rate of the codebook (pixel units: codes live in [-1, 1]).
        kmeans_iterations: Lloyd iterations of the k-means seeding.
        seed_batches: training batches whose frames seed the codebook (more batches, more
            varied scenes). They are read from the training loader in an extra pass before
            the first step; training then draws its epoch from the start as usual.
        reseed_every: steps between re-seeding unused codes (0: never).
        export_dir: where ``wmkit.core.export.ExportPretrained`` writes the tokenizer
            when fit ends (the stage adds the callback; ``--export_dir`` overrides this).
        log_videos_every_n_epochs: write a real|reconstruction GIF every n validation epochs
            under ``<log_dir>/reconstructions`` (0: never).
    """

    def __init__(
        self,
        tokenizer: PatchVQTokenizer,
        lr: float = 1e-3,
        kmeans_iterations: int = 20,
        seed_batches: int = 1,
        reseed_every: int = 100,
        export_dir: str | None = None,
        log_videos_every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        if lr <= 0 or kmeans_iterations < 1 or seed_batches < 1 or reseed_every < 0:
            raise ValueError(
                "lr must be > 0, kmeans_iterations >= 1, seed_batches >= 1 and reseed_every "
                f">= 0; got {lr}, {kmeans_iterations}, {seed_batches}, {reseed_every}"
            )
        self.save_hyperparameters(ignore=["tokenizer"])
        self.tokenizer = tokenizer
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("usage", torch.zeros(tokenizer.codebook_size))

    def on_train_start(self) -> None:
        """Seed the codebook from the first ``seed_batches`` batches (not when it is already
        fitted: a given codebook, or a resumed run)."""
        if bool(self.tokenizer.fitted):
            return
        loader = self.trainer.train_dataloader
        batches = [b["frames"] for b in islice(loader, self.hparams.seed_batches)]
        if not batches:
            raise ValueError("PatchVQModule: the training dataloader yielded no batch to seed from")
        self._seed_codebook(torch.cat(batches).to(self.device))

    def _seed_codebook(self, frames: Tensor) -> None:
        """k-means on ``frames`` (rank 0), broadcast to every rank."""
        tok = self.tokenizer
        if self.trainer.is_global_zero:
            tok.fit(frames, iterations=self.hparams.kmeans_iterations)
        codebook = self.trainer.strategy.broadcast(tok.codebook.data, src=0)
        tok.codebook.data.copy_(codebook)
        tok.fitted.fill_(True)

    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        frames = Batch.coerce(batch, require=("frames",)).frames
        if not bool(self.tokenizer.fitted):
            self._seed_codebook(frames)
        out = self.tokenizer(frames)
        self.usage += torch.bincount(out.ids.flatten(), minlength=self.usage.numel())
        self.train_steps += 1
        every = self.hparams.reseed_every
        if every and int(self.train_steps) % every == 0:
            self._reseed(frames)
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=frames.shape[0])
        self.log("train/psnr", psnr(out.reconstruction.detach().clamp(-1, 1), frames))
        return out.loss

    @torch.no_grad()
    def _reseed(self, frames: Tensor) -> None:
        """Move codes unused since the last re-seed onto the worst-fitted patches of
        ``frames`` (the same patches on every rank: rank 0's batch is broadcast)."""
        usage = self.trainer.strategy.reduce(self.usage, reduce_op="sum")
        dead = (usage == 0).nonzero().flatten()
        self.usage.zero_()
        if not dead.numel():
            return
        tok = self.tokenizer
        frames = self.trainer.strategy.broadcast(frames, src=0)
        x = tok.patches(frames).reshape(-1, tok.codebook.shape[1])
        err = (x - tok.codebook[tok._nearest(x)]).square().sum(-1)  # [N]
        worst = err.topk(min(dead.numel(), x.shape[0])).indices
        tok.codebook.data[dead[: worst.numel()]] = x[worst]
        self.log("train/reseeded_codes", float(worst.numel()))

    def _evaluate(self, batch: Batch | dict[str, Tensor], batch_idx: int, split: str) -> None:
        frames = Batch.coerce(batch, require=("frames",)).frames
        if not bool(self.tokenizer.fitted):  # validation before the first training step
            return
        tok = self.tokenizer
        ids = tok.encode(frames).values
        recon = tok.decode(ids)
        metrics = {
            "psnr": psnr(recon, frames),
            "mse": (recon - frames).square().mean(),
            "codes_used": torch.tensor(float(ids.unique().numel())),
        }
        if split == "test":
            metrics["ssim"] = ssim(recon, frames)
        self.log_evaluation(frames, recon, metrics, split, batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.tokenizer.parameters(), lr=self.hparams.lr)
