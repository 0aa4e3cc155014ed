"""What the quickstart runs: budgets per preset and the stage configs it writes.

Every training step is an ordinary LightningCLI config (written to ``OUT/configs/``), so a
user can rerun one stage with ``wmkit <stage> fit -c OUT/configs/<stage>.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from wmkit.apps.quickstart.ar_configs import ar_world_config, compressive_config
from wmkit.apps.quickstart.latent_tokenizers import (
    LATENT_TOKENIZERS,
    LatentTokenizer,
    latent_tokenizer_config,
)

__all__ = ["EPOCH_BATCHES", "PRESETS", "QuickstartPlan", "checkpoint_interval"]

#: training batches per epoch (validation runs at each epoch's end)
EPOCH_BATCHES = 50


def checkpoint_interval(steps: int) -> int:
    """Steps between the checkpoints of a stage of ``steps`` steps: about a tenth of them,
    raised to a number with no factor in common with :data:`EPOCH_BATCHES`, so no checkpoint
    falls on an epoch's end. A run killed and resumed from any of them then ends with the
    weights of an uninterrupted run (:mod:`wmkit.core.random_state` says why an epoch's end,
    which a validation follows, would not)."""
    every = max(1, steps // 10)
    while math.gcd(every, EPOCH_BATCHES) != 1:
        every += 1
    return every


@dataclass(frozen=True)
class QuickstartPlan:
    """Settings of one quickstart run.

    Attributes:
        out: output directory (configs, checkpoints, exported models, report).
        data_dir: recorded dataset (shared between runs, reused when complete).
        data: an existing dataset to train on instead of recording (a wmkit episode dataset,
            a LeRobot dataset or a folder of videos), read at ``resolution``.
        data_kind: its reader (``wmkit``, ``lerobot``, ``video_folder``).
        source_kwargs: its reader options (``camera_key``, ``action_spec``, ...).
        env: simulator to record (``crafter``, ``metaworld``, ``vizdoom``).
        policy: exploration policy (``None``: the env's default; Crafter's ``explore`` walks
            and interacts more often than uniform random, so actions visibly matter).
        world: ``diffusion`` (per-frame KL tokenizer + Diffusion Forcing DiT on its latents;
            the default) or ``ar``
            (compressive FSQ tokenizer + autoregressive transformer).
        tokenizer: the diffusion path's tokenizer (``latent_tokenizers.LATENT_TOKENIZERS``):
            ``per-frame`` or ``vidtok-4x`` (4 frames per latent, so 4 frames per world-model
            step; ``ar`` takes ``per-frame`` only, meaning its own compressive tokenizer).
        device: ``cpu`` or ``cuda``.
        resolution: frame size.
        episodes: episodes recorded.
        max_steps: steps per recorded episode.
        clip_length: frames per training clip (raised to ``1 + 4n`` for ``vidtok-4x``:
            :attr:`world_clip`).
        tokenizer_steps / world_steps: optimisation steps per stage.
        gate_steps: optimisation steps of the change gate that serves the world model's frames
            (:class:`wmkit.core.GatedWorldModel`: per 4×4 block, the model's block or the last
            frame's, learned on the world model's rollouts); 0: no gate. World models of
            several frames per step (``vidtok-4x``) take no gate.
        tokenizer_size / world_size: named sizes of the two models (``world_size=None``:
            ``small`` on CPU; on CUDA ``300M`` for ``ar`` and ``base`` for ``diffusion``).
        batch_size: clips per batch.
        eval_batches: held-out batches evaluated.
        context / horizon: evaluation context frames and predicted frames.
        seed: seed of everything.
        threads: torch intra-op threads on CPU.
    """

    out: Path = Path("runs/quickstart")
    data_dir: Path | None = None
    data: Path | None = None
    data_kind: str = "auto"
    source_kwargs: dict[str, Any] | None = None
    env: str = "crafter"
    policy: str | None = "explore"
    world: Literal["ar", "diffusion"] = "diffusion"
    tokenizer: str = "per-frame"
    device: str = "cpu"
    resolution: int = 32
    episodes: int = 48
    max_steps: int = 120
    clip_length: int = 8
    tokenizer_steps: int = 600
    world_steps: int = 1000
    gate_steps: int = 300
    tokenizer_size: str = "tiny"
    world_size: str | None = None
    batch_size: int = 8
    eval_batches: int = 4
    context: int = 2
    horizon: int = 6
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.tokenizer not in LATENT_TOKENIZERS:
            raise ValueError(
                f"tokenizer must be one of {sorted(LATENT_TOKENIZERS)}; got {self.tokenizer!r}"
            )
        if self.world == "ar" and self.tokenizer != "per-frame":
            raise ValueError(
                f"--tokenizer {self.tokenizer} drives the diffusion world model only: the "
                "autoregressive world model over a temporally compressing tokenizer is not "
                "in the quickstart yet; use --world diffusion"
            )

    @property
    def latent_tokenizer(self) -> LatentTokenizer:
        """The geometry of the diffusion path's tokenizer (``tokenizer``)."""
        return LATENT_TOKENIZERS[self.tokenizer]

    @property
    def gated(self) -> bool:
        """Whether a change gate is trained on the world model (``gate_steps > 0``, one
        frame per step)."""
        return self.gate_steps > 0 and self.frames_per_step == 1

    @property
    def frames_per_step(self) -> int:
        """Frames per world-model step: the tokenizer's temporal compression (diffusion)."""
        return self.latent_tokenizer.temporal_compression if self.world == "diffusion" else 1

    @property
    def world_clip(self) -> int:
        """Frames per world-model training clip: ``clip_length``, raised to ``1 + n·k``."""
        return (
            self.latent_tokenizer.fit_clip(self.clip_length)
            if self.world == "diffusion"
            else self.clip_length
        )

    @property
    def world_model_size(self) -> str:
        """``world_size``, or the default of this world family on this device."""
        if self.world_size is not None:
            return self.world_size
        if not self.device.startswith("cuda"):
            return "small"
        return "base" if self.world == "diffusion" else "300M"

    @property
    def dataset(self) -> Path:
        if self.data is not None:
            return self.data
        if self.data_dir is not None:
            return self.data_dir
        name = f"{self.env}-{self.resolution}-{self.policy or 'default'}-e{self.episodes}"
        return Path("runs/data") / f"{name}-s{self.seed}"

    def data_options(self) -> dict[str, Any]:
        """``EpisodeDataModule`` options that read ``dataset``: the reader and, for a given
        dataset, the resolution (recordings are made at it)."""
        if self.data is None:
            return {}
        source_kwargs = dict(self.source_kwargs or {})
        if self.data_kind in ("lerobot", "video_folder"):  # decode (and cache) at that size
            source_kwargs.setdefault("resolution", self.resolution)
        return {"kind": self.data_kind, "source_kwargs": source_kwargs,
                "resolution": self.resolution}  # fmt: skip

    def scaled(self, **changes: Any) -> QuickstartPlan:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values; the default ``per-frame`` tokenizer is left out, so a
        run started before ``tokenizer`` existed resumes (its saved settings match)."""
        out = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        if out["tokenizer"] == "per-frame":
            del out["tokenizer"]
        return out

    # ------------------------------------------------------------------------- configs
    def trainer_config(self, stage: str, steps: int) -> dict[str, Any]:
        accelerator = "gpu" if self.device.startswith("cuda") else "cpu"
        return {
            "max_steps": steps,
            "max_epochs": -1,
            "accelerator": accelerator,
            "devices": 1,
            "precision": "bf16-mixed" if accelerator == "gpu" else "32-true",
            "default_root_dir": str(self.out / "logs" / stage),
            "logger": False,
            "log_every_n_steps": 10,
            "limit_val_batches": 2,
            "val_check_interval": None,
            "check_val_every_n_epoch": None,
            "enable_model_summary": False,
            "callbacks": [{
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {
                    "dirpath": str(self.out / "checkpoints" / stage),
                    "save_last": True,
                    "every_n_train_steps": checkpoint_interval(steps),
                    "save_top_k": 0,
                },
            }],  # the stage adds RandomStateCheckpoint: resumes draw the same noise
        }  # fmt: skip

    def data_config(self, with_steps: bool, clip_length: int) -> dict[str, Any]:
        return {
            "class_path": "wmkit.core.data.datamodule.EpisodeDataModule",
            "init_args": {
                "path": str(self.dataset),
                "clip_length": clip_length,
                "batch_size": self.batch_size,
                "num_workers": 0,
                "split": [0.8, 0.1, 0.1],
                "samples_per_epoch": self.batch_size * EPOCH_BATCHES,
                "with_steps": with_steps,
                "seed": self.seed,
                **self.data_options(),
            },
        }

    def tokenizer_config(self) -> dict[str, Any]:
        """The tokenizer stage: a compressive FSQ tokenizer for ``ar``, a KL VidTok of
        ``tokenizer`` for ``diffusion`` (:mod:`~wmkit.apps.quickstart.latent_tokenizers`)."""
        if self.world == "diffusion":
            return latent_tokenizer_config(self)
        return compressive_config(self)

    def world_config(
        self, action_spec: dict[str, Any], latent_scale: float = 1.0
    ) -> dict[str, Any]:
        """The world model stage: ``ar`` over the frozen tokenizer's tokens, or ``diffusion``
        (Diffusion Forcing with a causal DiT on the frozen tokenizer's latents, multiplied by
        ``latent_scale``)."""
        if self.world == "diffusion":
            return self._diffusion_config(action_spec, latent_scale)
        return ar_world_config(self, action_spec)

    def _dit_overrides(self) -> dict[str, Any]:
        """Patches of 4×4 pixels (2×2 on ``per-frame``'s 2×-down latents, 1×1 on
        ``vidtok-4x``'s 4×-down ones: 64 tokens per latent frame at 32²); on CPU presets a DiT
        of width 96 (the best next-frame PSNR per CPU second measured on Crafter 32²,
        ``packages/diffusion-world/README.md``)."""
        patch = self.latent_tokenizer.dit_patch
        if self.device.startswith("cuda"):
            return {"patch_size": patch}
        return {"patch_size": patch, "hidden_size": 96, "depth": 2, "num_heads": 4}

    def _dit_args(self) -> dict[str, Any]:
        """The DiT's arguments: the named ``world_model_size`` with :meth:`_dit_overrides`, on
        the latents (``residual``: the change and the previous latent frame as channels)."""
        from wmkit.diffusion_world.dit import DIT_SIZES

        latent = self.latent_tokenizer
        return {
            **DIT_SIZES[self.world_model_size],
            **self._dit_overrides(),
            "in_channels": 2 * latent.latent_channels,
            "out_channels": latent.latent_channels,
            "image_size": self.resolution // latent.spatial_compression,
        }

    def _diffusion_config(self, action_spec: dict[str, Any], latent_scale: float) -> dict[str, Any]:
        """Diffusion Forcing with a causal DiT on the tokenizer's latents, EDM objective,
        predicting the change from the previous frame (``residual``), sampled in one step with
        the history cache carried from frame to frame (``carry_history``: the same rollouts
        until the window fills, the same quality past it, 30% faster play) and decoded anchored
        on the last real frame. Reward and done heads (tiny CNNs beside the DiT) predict each
        transition's reward and termination; they train on real next frames and, 4x weighted,
        on next frames the DiT generates (``generated_head_weight``), which is what they read
        in ``step``. ``latent_scale`` makes latent changes as large
        as pixel changes, so ``sigma_data`` (0.1, tuned on pixels) carries over.

        With ``vidtok-4x`` each step is one latent of 4 frames (``frames_per_step``), on clips
        of ``1 + 4n`` frames, without heads or anchored decoding (diffusion-world has them
        per frame only), decoded streaming (the tokenizer's ``decode_next``)."""
        latent = self.latent_tokenizer
        world: dict[str, Any] = {
            "action_spec": action_spec,
            "network": {
                "class_path": "wmkit.diffusion_world.SpatioTemporalDiT",
                "init_args": self._dit_args(),
            },
            "objective": {
                "class_path": "wmkit.diffusion_world.EDMObjective",
                "init_args": {"sigma_data": 0.1},
            },
            "channels": latent.latent_channels,
            "image_size": self.resolution // latent.spatial_compression,
            "residual": True,
            "tokenizer": str(self.out / "tokenizer"),
            "latent_scale": latent_scale,
            "anchored_decoding": True,
            "sampling": {
                "num_steps": 1,
                "context_window": self.world_clip,
                "carry_history": True,
            },
            # for play, agents and the report
            "heads": {"reward": True, "done": True},
        }
        k = self.frames_per_step
        if k > 1:  # the window counts latents: a clip's 1 + n
            del world["heads"]
            world.update(anchored_decoding=False, frames_per_step=k)
            world["sampling"]["context_window"] = 1 + (self.world_clip - 1) // k
        return {
            "seed_everything": self.seed,
            "trainer": self.trainer_config("world", self.world_steps),
            "model": {
                "class_path": "wmkit.diffusion_world.lit.DiffusionForcingModule",
                "init_args": {
                    "lr": 2e-3,
                    "warmup_steps": 50,
                    "eval_context": self.context,
                    "generated_head_weight": 4.0,
                    "model": {
                        "class_path": "wmkit.diffusion_world.DiffusionWorldModel",
                        "init_args": world,
                    },
                },
            },
            "data": self.data_config(with_steps=True, clip_length=self.world_clip),
        }


PRESETS: dict[str, dict[str, Any]] = {
    # the test budget: every step runs for real, in about a minute
    "tiny": {
        "resolution": 32, "episodes": 6, "max_steps": 40, "tokenizer_steps": 12,
        "world_steps": 12, "gate_steps": 6, "tokenizer_size": "tiny", "world_size": "tiny",
        "batch_size": 4,
        "eval_batches": 1, "horizon": 3,
    },
    # the default: whole loop on 2 CPU cores in about 15 minutes
    "default": {},
    # a bigger run for a GPU
    "gpu": {
        "resolution": 64, "episodes": 400, "max_steps": 200, "clip_length": 16,
        "tokenizer_steps": 20000, "world_steps": 40000, "gate_steps": 3000,
        "tokenizer_size": "base",
        "batch_size": 16, "eval_batches": 16, "horizon": 8,
        "device": "cuda",
    },
}  # fmt: skip
