"""``DiamondModule``: Lightning training of a :class:`DiamondWorldModel`'s parts (DIAMOND's
world-model training, Alonso et al. 2024, arXiv:2405.12399, App. B; the ``csgo`` branch for the
upsampler), so ``wmkit diffusion-world fit -c configs/diamond-tiny.yaml`` trains one from
scratch and a converted model (``wmkit convert diamond``) can be fine-tuned.

Each batch holds clips ``frames [B, T, C, H, W]`` at the world's public resolution (the full
one when it has an upsampler), ``actions [B, T]`` (action ``t`` taken at frame ``t``) and, for
the reward/end model, ``rewards [B, T]`` and optionally ``dones [B, T]`` and ``step_mask``
(the core :class:`~wmkit.core.Batch` conventions). The parts it trains (``components``):

- ``denoiser``: :meth:`DiamondWorldModel.loss` on the first ``n + K`` frames, brought to the
  denoiser's resolution by :meth:`DiamondWorldModel.low_res` (``K = autoregressive_steps``:
  Atari 1, CS:GO 4);
- ``rew_end_model``: :meth:`DiamondRewardEnd.loss` from a zero LSTM state over the clip's
  transitions ``(frame t, action t, frame t + 1)``, targets the sign of ``rewards[t]`` and
  ``dones[t]``, as DIAMOND feeds it segments of ``horizon + n`` frames (``obs[:-1]``,
  ``obs[1:]``, no burn-in in training: the state starts at zero on each segment). A step whose
  ``step_mask`` is false (a clip's padded last step) is left out; wmkit clips end on the
  episode's true final observation, which DIAMOND swaps in for its padding frame. Without
  ``dones`` no step is terminal (as in ar-world's training);
- ``upsampler``: the upsampler denoiser's loss on ``n_up + upsampler_steps`` full-resolution
  frames, conditioned on the bicubic ``×factor`` upsampling of their low-resolution copies
  made by the same antialiased resize as ``reset`` (the ``csgo`` branch: 1 step).

The total loss is their sum; the parts share no parameters, so one AdamW over the trained
parts equals DIAMOND's one optimiser per part (same learning rate and weight decay: 1e-4,
1e-2). ``max_grad_norms`` clips each part's gradients on its own, as DIAMOND does (denoiser
1.0, reward/end 100; CS:GO 10 and 10); the trainer's ``gradient_clip_val`` would clip them
together. Validation and test log each part's loss and, when the denoiser trains, roll the
model out from the first ``eval_context`` frames and log the PSNR of the generated frames next
to that of copying the last context frame (DESIGN.md §7).

Where we differ: DIAMOND samples clips with a per-episode weighting and trains the agent in
the same loop; here the data module decides the clips and the agent trains elsewhere.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wmkit.core import Batch
from wmkit.diffusion_world.diamond.world_model import DiamondWorldModel
from wmkit.diffusion_world.lit import DiffusionForcingModule, psnr

__all__ = ["COMPONENTS", "DiamondModule"]

#: the trainable parts of a :class:`DiamondWorldModel`, by submodule name
COMPONENTS = ("denoiser", "rew_end_model", "upsampler")


class DiamondModule(DiffusionForcingModule):
    """Trains the parts of a :class:`DiamondWorldModel` (the learning-rate warm-up is
    :class:`~wmkit.diffusion_world.lit.DiffusionForcingModule`'s: linear).

    Args:
        model: the world model (injected).
        lr: AdamW learning rate (DIAMOND: 1e-4 for every part).
        weight_decay: AdamW weight decay (DIAMOND: 1e-2).
        warmup_steps: linear learning-rate warm-up (DIAMOND: 100).
        autoregressive_steps: frames ``K`` the denoiser denoises in turn per clip, each
            conditioned on the previous estimates; ``None``: every frame after the first ``n``.
        eval_context: context frames of the evaluation rollouts.
        components: the parts to train, of ``denoiser``, ``rew_end_model``, ``upsampler``
            (each must exist in the model); ``None``: every part the model has.
        reward_end_length: frames per clip the reward/end model reads (``T - 1`` transitions;
            DIAMOND: ``horizon + n`` = 19); ``None``: the whole clip.
        upsampler_steps: full-resolution frames the upsampler denoises in turn per clip.
        max_grad_norms: per part, the norm its gradients are clipped to (``None`` or a part
            left out: no per-part clipping).
    """

    def __init__(
        self,
        model: DiamondWorldModel,
        lr: float = 1e-4,
        weight_decay: float = 1e-2,
        warmup_steps: int = 100,
        autoregressive_steps: int | None = 1,
        eval_context: int = 4,
        components: list[str] | None = None,
        reward_end_length: int | None = None,
        upsampler_steps: int = 1,
        max_grad_norms: dict[str, float] | None = None,
    ) -> None:
        super(DiffusionForcingModule, self).__init__()  # the LightningModule, not its init
        if autoregressive_steps is not None and autoregressive_steps < 1:
            raise ValueError(f"autoregressive_steps must be >= 1; got {autoregressive_steps}")
        if eval_context < 1:
            raise ValueError(f"eval_context must be >= 1; got {eval_context}")
        if reward_end_length is not None and reward_end_length < 2:
            raise ValueError(
                f"reward_end_length must be >= 2 (one transition); got {reward_end_length}"
            )
        if upsampler_steps < 1:
            raise ValueError(f"upsampler_steps must be >= 1; got {upsampler_steps}")
        present = [c for c in COMPONENTS if getattr(model, c, None) is not None]
        chosen = list(present if components is None else components)
        unknown = [c for c in chosen if c not in COMPONENTS]
        missing = [c for c in chosen if c in COMPONENTS and c not in present]
        if unknown or missing or not chosen or len(set(chosen)) != len(chosen):
            raise ValueError(
                f"components must be distinct names among {COMPONENTS} that the model has "
                f"({present}); got {components} (unknown {unknown}, not in the model {missing})"
            )
        norms = dict(max_grad_norms or {})
        bad = {k: v for k, v in norms.items() if k not in COMPONENTS or not v > 0}
        if bad:
            raise ValueError(
                f"max_grad_norms must map parts of {COMPONENTS} to norms > 0; got {bad}"
            )
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.components = [c for c in COMPONENTS if c in chosen]

    def _parts(self) -> dict[str, nn.Module]:
        return {c: getattr(self.model, c) for c in self.components}

    # ------------------------------------------------------------------ the three losses
    def _denoiser_loss(self, batch: Batch) -> Tensor:
        frames, actions = batch.frames, batch.actions
        n, k = self.model.num_steps_conditioning, self.hparams.autoregressive_steps
        length = frames.shape[1] if k is None else n + k
        if frames.shape[1] < length or length <= n:
            raise ValueError(
                f"the denoiser needs clips of at least n + K = {n} + {k or 1} frames; got "
                f"{frames.shape[1]}"
            )
        low = self.model.low_res(frames[:, :length])
        return self.model.loss(low, actions[:, :length]).loss

    def _rew_end_losses(self, batch: Batch) -> dict[str, Tensor]:
        rew_end = self.model.rew_end_model
        if not callable(getattr(rew_end, "loss", None)):
            raise ValueError(
                f"training the reward/end model needs its loss(obs, act, next_obs, reward, done, "
                f"mask); {type(rew_end).__name__} has none"
            )
        if batch.rewards is None:
            raise ValueError(
                "the reward/end model trains on batch 'rewards' (and 'dones'); the batch has "
                "none: give them or leave 'rew_end_model' out of components"
            )
        length = self.hparams.reward_end_length or batch.frames.shape[1]
        if batch.frames.shape[1] < length or length < 2:
            raise ValueError(
                f"the reward/end model needs clips of at least {max(length, 2)} frames; got "
                f"{batch.frames.shape[1]}"
            )
        low = self.model.low_res(batch.frames[:, :length])
        steps = slice(0, length - 1)
        rewards = batch.rewards[:, steps].float()
        dones = torch.zeros_like(rewards) if batch.dones is None else batch.dones[:, steps]
        mask = None if batch.step_mask is None else batch.step_mask[:, steps].bool()
        act = self.model._act(batch.actions[:, steps])
        out = rew_end.loss(low[:, :-1], act, low[:, 1:], rewards, dones, mask)
        return {"rew_end_loss": out.loss, "rew_loss": out.loss_rew, "end_loss": out.loss_end}

    def _upsampler_loss(self, batch: Batch) -> Tensor:
        up = self.model.upsampler
        length = up.num_steps_conditioning + self.hparams.upsampler_steps
        if batch.frames.shape[1] < length:
            raise ValueError(
                f"the upsampler needs clips of at least n + steps = {length} full-resolution "
                f"frames; got {batch.frames.shape[1]}"
            )
        full = batch.frames[:, :length]
        return up.loss(full, None, low_res=self.model.low_res(full)).loss

    def losses(self, batch: Batch | dict[str, Tensor]) -> dict[str, Tensor]:
        """The trained parts' losses (``denoiser_loss``, ``rew_end_loss`` with its
        ``rew_loss`` and ``end_loss`` terms, ``upsampler_loss``) and their sum ``loss``."""
        batch = Batch.coerce(batch, require=("frames",))
        if batch.actions is None and self.components != ["upsampler"]:
            raise ValueError("DIAMOND trains on actions: the batch has no 'actions'")
        out: dict[str, Tensor] = {}
        if "denoiser" in self.components:
            out["denoiser_loss"] = self._denoiser_loss(batch)
        if "rew_end_model" in self.components:
            out.update(self._rew_end_losses(batch))
        if "upsampler" in self.components:
            out["upsampler_loss"] = self._upsampler_loss(batch)
        parts = ("denoiser_loss", "rew_end_loss", "upsampler_loss")
        out["loss"] = sum(out[k] for k in parts if k in out)  # type: ignore[assignment]
        return out

    # ------------------------------------------------------------------ Lightning
    def training_step(self, batch: Batch | dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.losses(batch)
        loss = out.pop("loss")
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in out.items()})
        return loss

    def _evaluate(self, batch: Batch | dict[str, Tensor], split: str) -> None:
        batch = Batch.coerce(batch, require=("frames",))
        logs = {f"{split}/{k}": v for k, v in self.losses(batch).items()}
        frames, actions = batch.frames, batch.actions
        k = self.hparams.eval_context
        if "denoiser" in self.components and frames.shape[1] > k:
            gen = self.model.rollout(frames[:, :k], actions[:, k - 1 : -1], actions[:, : k - 1])
            target = frames[:, k:]
            logs[f"{split}/psnr"] = psnr(gen.frames, target).mean()
            copy = frames[:, k - 1 : k].expand_as(target)
            logs[f"{split}/psnr_copy_last"] = psnr(copy, target).mean()
        self.log_dict(logs, batch_size=frames.shape[0])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        for name, norm in (self.hparams.max_grad_norms or {}).items():
            if name in self.components:
                torch.nn.utils.clip_grad_norm_(getattr(self.model, name).parameters(), norm)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters of the parts in ``components`` (the others stay as they are)."""
        return [p for part in self._parts().values() for p in part.parameters()]
