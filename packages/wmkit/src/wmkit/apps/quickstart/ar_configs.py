"""The quickstart's ``--world ar`` stages: an iVideoGPT-style compressive FSQ tokenizer
(Wu et al. 2024) and the autoregressive world model over its tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wmkit.apps.quickstart.plan import QuickstartPlan

__all__ = ["ar_world_config", "compressive_config"]


def compressive_config(plan: QuickstartPlan) -> dict[str, Any]:
    """iVideoGPT-style compressive tokenizer: each context frame gets ``(R/s)²`` tokens
    (``s`` = 4 at 32², 8 above), each future frame 4× fewer, decoded as the latest real
    context frame plus a change (``future_residual``: an untrained tokenizer is exactly
    copy-last-frame, and future tokens only describe what moved). Trained with MSE (L1
    keeps a residual decoder at zero change) on clips of ``context`` + the rest."""
    return {
        "seed_everything": plan.seed,
        "trainer": plan.trainer_config("tokenizer", plan.tokenizer_steps),
        "model": {
            "class_path": "wmkit.tokenizers.compressive_lit.CompressiveModule",
            "init_args": {
                "lr": 2e-3,
                "l1_weight": 0.0,
                "mse_weight": 1.0,
                "perceptual_weight": 0.0,
                "min_context_frames": plan.context,
                "max_context_frames": plan.context,
                "eval_context_frames": plan.context,
                "export_dir": str(plan.out / "tokenizer"),
                "log_videos_every_n_epochs": 0,
                "tokenizer": {
                    "class_path": "wmkit.tokenizers.compressive.CompressiveTokenizer",
                    "init_args": {
                        "size": plan.tokenizer_size,
                        "spatial_compression": 4 if plan.resolution <= 32 else 8,
                        "future_patch": 2,
                        "future_residual": True,
                        "context_frames": plan.context,
                        "context_levels": [8, 5, 5, 5],
                        "future_levels": [8, 5, 5, 5],
                        "cross_attention_levels": 2,
                    },
                },
            },
        },
        "data": plan.data_config(with_steps=False, clip_length=plan.clip_length),
    }


def ar_world_config(plan: QuickstartPlan, action_spec: dict[str, Any]) -> dict[str, Any]:
    """An ``ARWorldModel`` over the frozen compressive tokenizer's tokens (``plan.context``
    context frames, diagonal decoding), trained on ``plan.clip_length``-frame clips."""
    from wmkit.ar_world.sizes import transformer_spec

    return {
        "seed_everything": plan.seed,
        "trainer": plan.trainer_config("world", plan.world_steps),
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
                        "tokenizer": str(plan.out / "tokenizer"),
                        "frame_size": [plan.resolution, plan.resolution],
                        "transformer": transformer_spec(plan.world_model_size),
                        "layout": {
                            "class_path": "wmkit.ar_world.TokenLayout",
                            "init_args": {
                                "action_mode": "tokens",
                                "context_frames": plan.context,
                            },
                        },
                        "decoder": {
                            "class_path": "wmkit.ar_world.DiagonalDecoder",
                            "init_args": {"window": 4, "temperature": 1.0, "top_k": 1},
                        },
                        "max_frames": plan.clip_length,
                    },
                },
            },
        },
        "data": plan.data_config(with_steps=True, clip_length=plan.clip_length),
    }
