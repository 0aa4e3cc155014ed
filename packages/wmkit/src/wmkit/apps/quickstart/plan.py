"""What the quickstart runs: budgets per preset and the stage configs it writes.

Every training step is an ordinary LightningCLI config (written to ``OUT/configs/``), so a
user can rerun one stage with ``wmkit <stage> fit -c OUT/configs/<stage>.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

__all__ = ["EPOCH_BATCHES", "PRESETS", "QuickstartPlan", "checkpoint_interval"]

#: latent channels of the diffusion path's tokenizer
LATENT_CHANNELS = 4
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
            the default, which beats copy-last-frame on the default budget) or ``ar``
            (compressive FSQ tokenizer + autoregressive transformer).
        device: ``cpu`` or ``cuda``.
        resolution: frame size.
        episodes: episodes recorded.
        max_steps: steps per recorded episode.
        clip_length: frames per training clip.
        tokenizer_steps / world_steps: optimisation steps per stage.
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
    device: str = "cpu"
    resolution: int = 32
    episodes: int = 48
    max_steps: int = 120
    clip_length: int = 8
    tokenizer_steps: int = 600
    world_steps: int = 1000
    tokenizer_size: str = "tiny"
    world_size: str | None = None
    batch_size: int = 8
    eval_batches: int = 4
    context: int = 2
    horizon: int = 6
    seed: int = 0
    threads: int = 1

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
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    # ------------------------------------------------------------------------- configs
    def _trainer(self, stage: str, steps: int) -> dict[str, Any]:
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

    def _data(self, with_steps: bool, clip_length: int) -> dict[str, Any]:
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
        """The tokenizer stage: a compressive FSQ tokenizer for ``ar``, a per-frame KL VidTok
        for ``diffusion`` (:meth:`_latent_tokenizer_config`)."""
        if self.world == "diffusion":
            return self._latent_tokenizer_config()
        return self._compressive_config()

    def _compressive_config(self) -> dict[str, Any]:
        """iVideoGPT-style compressive tokenizer: each context frame gets ``(R/s)²`` tokens
        (``s`` = 4 at 32², 8 above), each future frame 4× fewer, decoded as the latest real
        context frame plus a change (``future_residual``: an untrained tokenizer is exactly
        copy-last-frame, and future tokens only describe what moved). Trained with MSE (L1
        keeps a residual decoder at zero change) on clips of ``context`` + the rest."""
        return {
            "seed_everything": self.seed,
            "trainer": self._trainer("tokenizer", self.tokenizer_steps),
            "model": {
                "class_path": "wmkit.tokenizers.compressive_lit.CompressiveModule",
                "init_args": {
                    "lr": 2e-3,
                    "l1_weight": 0.0,
                    "mse_weight": 1.0,
                    "perceptual_weight": 0.0,
                    "min_context_frames": self.context,
                    "max_context_frames": self.context,
                    "eval_context_frames": self.context,
                    "export_dir": str(self.out / "tokenizer"),
                    "log_videos_every_n_epochs": 0,
                    "tokenizer": {
                        "class_path": "wmkit.tokenizers.compressive.CompressiveTokenizer",
                        "init_args": {
                            "size": self.tokenizer_size,
                            "spatial_compression": 4 if self.resolution <= 32 else 8,
                            "future_patch": 2,
                            "future_residual": True,
                            "context_frames": self.context,
                            "context_levels": [8, 5, 5, 5],
                            "future_levels": [8, 5, 5, 5],
                            "cross_attention_levels": 2,
                        },
                    },
                },
            },
            "data": self._data(with_steps=False, clip_length=self.clip_length),
        }

    def _latent_tokenizer_config(self) -> dict[str, Any]:
        """Per-frame KL VidTok with 2× spatial compression and 4 latent channels (a 32² frame
        becomes 4×16×16), trained with MSE for PSNR. On CPU presets its width is 16 instead of
        the ``tiny`` size's 4: it reconstructed held-out Crafter frames at 27.7 dB after 150 s
        of training (a width-4, 4×-down, L1-trained one: 22.3 dB). The diffusion world model
        decodes its latents anchored on the last real frame (``anchored_decoding``), so this
        error mostly cancels."""
        tokenizer: dict[str, Any] = {
            "size": self.tokenizer_size,
            "regularizer": "kl",
            "latent_channels": LATENT_CHANNELS,
            "spatial_compression": 2,
            "temporal_compression": 1,
            "temporal_mixing": False,
        }
        if not self.device.startswith("cuda"):
            tokenizer.update(channels=16, multipliers=[1, 2])
        return {
            "seed_everything": self.seed,
            "trainer": self._trainer("tokenizer", self.tokenizer_steps),
            "model": {
                "class_path": "wmkit.tokenizers.lit.VidTokModule",
                "init_args": {
                    "lr": 2e-3,
                    "l1_weight": 0.0,
                    "mse_weight": 1.0,
                    "perceptual_weight": 0.0,
                    "kl_weight": 1e-6,
                    "export_dir": str(self.out / "tokenizer"),
                    "log_videos_every_n_epochs": 0,
                    "tokenizer": {
                        "class_path": "wmkit.tokenizers.vidtok.VidTokTokenizer",
                        "init_args": tokenizer,
                    },
                },
            },
            "data": self._data(with_steps=False, clip_length=4),
        }

    def world_config(
        self, action_spec: dict[str, Any], latent_scale: float = 1.0
    ) -> dict[str, Any]:
        """The world model stage: ``ar`` over the frozen tokenizer's tokens, or ``diffusion``
        (Diffusion Forcing with a causal DiT on the frozen tokenizer's latents, multiplied by
        ``latent_scale``)."""
        if self.world == "diffusion":
            return self._diffusion_config(action_spec, latent_scale)
        from wmkit.ar_world.sizes import transformer_spec

        return {
            "seed_everything": self.seed,
            "trainer": self._trainer("world", self.world_steps),
            "model": {
                "class_path": "wmkit.ar_world.lit.ARWorldModelModule",
                "init_args": {
                    "lr": 1e-3,
                    "warmup_steps": 50,
                    "action_dropout": 0.1,
                    "model": {
                        "class_path": "wmkit.ar_world.world_model.ARWorldModel",
                        "init_args": {
                            "action_spec": action_spec,
                            "tokenizer": str(self.out / "tokenizer"),
                            "frame_size": [self.resolution, self.resolution],
                            "transformer": transformer_spec(self.world_model_size),
                            "layout": {
                                "class_path": "wmkit.ar_world.TokenLayout",
                                "init_args": {
                                    "action_mode": "tokens",
                                    "context_frames": self.context,
                                },
                            },
                            "decoder": {
                                "class_path": "wmkit.ar_world.DiagonalDecoder",
                                "init_args": {"window": 4, "temperature": 1.0, "top_k": 1},
                            },
                            "max_frames": self.clip_length,
                        },
                    },
                },
            },
            "data": self._data(with_steps=True, clip_length=self.clip_length),
        }

    def _dit_overrides(self) -> dict[str, Any]:
        """2×2 patches on the 2×-down latents (the 4×4 pixel patches of a 32² frame, 64 tokens
        per frame); on CPU presets a DiT of width 96 (the best next-frame PSNR per CPU second
        measured on Crafter 32², ``packages/diffusion-world/README.md``)."""
        if self.device.startswith("cuda"):
            return {"patch_size": 2}
        return {"patch_size": 2, "hidden_size": 96, "depth": 2, "num_heads": 4}

    def _dit_args(self) -> dict[str, Any]:
        """The DiT's arguments: the named ``world_model_size`` with :meth:`_dit_overrides`, on
        the latents (``residual``: the change and the previous latent frame as channels)."""
        from wmkit.diffusion_world.dit import DIT_SIZES

        return {
            **DIT_SIZES[self.world_model_size],
            **self._dit_overrides(),
            "in_channels": 2 * LATENT_CHANNELS,
            "out_channels": LATENT_CHANNELS,
            "image_size": self.resolution // 2,
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
        as pixel changes, so ``sigma_data`` (0.1, tuned on pixels) carries over."""
        return {
            "seed_everything": self.seed,
            "trainer": self._trainer("world", self.world_steps),
            "model": {
                "class_path": "wmkit.diffusion_world.lit.DiffusionForcingModule",
                "init_args": {
                    "lr": 2e-3,
                    "warmup_steps": 50,
                    "eval_context": self.context,
                    "generated_head_weight": 4.0,
                    "model": {
                        "class_path": "wmkit.diffusion_world.DiffusionWorldModel",
                        "init_args": {
                            "action_spec": action_spec,
                            "network": {
                                "class_path": "wmkit.diffusion_world.SpatioTemporalDiT",
                                "init_args": self._dit_args(),
                            },
                            "objective": {
                                "class_path": "wmkit.diffusion_world.EDMObjective",
                                "init_args": {"sigma_data": 0.1},
                            },
                            "channels": LATENT_CHANNELS,
                            "image_size": self.resolution // 2,
                            "residual": True,
                            "tokenizer": str(self.out / "tokenizer"),
                            "latent_scale": latent_scale,
                            "anchored_decoding": True,
                            "sampling": {
                                "num_steps": 1,
                                "context_window": self.clip_length,
                                "carry_history": True,
                            },
                            # for play, agents and the report
                            "heads": {"reward": True, "done": True},
                        },
                    },
                },
            },
            "data": self._data(with_steps=True, clip_length=self.clip_length),
        }


PRESETS: dict[str, dict[str, Any]] = {
    # the test budget: every step runs for real, in about a minute
    "tiny": {
        "resolution": 32, "episodes": 6, "max_steps": 40, "tokenizer_steps": 12,
        "world_steps": 12, "tokenizer_size": "tiny", "world_size": "tiny", "batch_size": 4,
        "eval_batches": 1, "horizon": 3,
    },
    # the default: whole loop on 2 CPU cores in about 15 minutes
    "default": {},
    # a bigger run for a GPU
    "gpu": {
        "resolution": 64, "episodes": 400, "max_steps": 200, "clip_length": 16,
        "tokenizer_steps": 20000, "world_steps": 40000, "tokenizer_size": "base",
        "batch_size": 16, "eval_batches": 16, "horizon": 8,
        "device": "cuda",
    },
}  # fmt: skip
