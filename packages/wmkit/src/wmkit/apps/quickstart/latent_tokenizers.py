"""The quickstart's tokenizer for the diffusion world model: a KL VidTok (Tang et al. 2024)
whose latents the world model runs in (:func:`latent_tokenizer_config`), chosen with
``--tokenizer`` (:data:`LATENT_TOKENIZERS`): ``per-frame`` (the default; one latent per frame,
2× spatial compression) or ``vidtok-4x`` (causal, 4× temporal and 4× spatial compression: one
latent per 4 frames, so the world model makes 4 frames per latent step, as Matrix-Game 2.0
and Self-Forcing do on the Wan VAE's 4×8×8 latents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wmkit.apps.quickstart.plan import QuickstartPlan

__all__ = ["LATENT_TOKENIZERS", "LatentTokenizer", "latent_tokenizer_config"]


@dataclass(frozen=True)
class LatentTokenizer:
    """The geometry of a diffusion-path tokenizer and the VidTok arguments that give it.

    Attributes:
        latent_channels: KL latent channels.
        spatial_compression: spatial factor (a 32² frame → ``32 / s`` squared latents).
        temporal_compression: frames per latent after the first (``k``; 1 = per frame).
        dit_patch: the DiT's patch on the latents (4×4 pixels either way: 64 tokens per
            latent frame at 32²).
        cpu_channels / cpu_multipliers: the VidTok width on CPU presets (the named size's on
            CUDA).
    """

    latent_channels: int
    spatial_compression: int
    temporal_compression: int
    dit_patch: int
    cpu_channels: int
    cpu_multipliers: tuple[int, ...]

    def fit_clip(self, frames: int) -> int:
        """The shortest clip of ``1 + n·k`` frames holding ``frames`` (``k`` =
        ``temporal_compression``): what a causal tokenizer encodes."""
        k = self.temporal_compression
        return 1 + -(-(frames - 1) // k) * k

    def vidtok_args(self, size: str, cpu: bool) -> dict[str, Any]:
        """``VidTokTokenizer`` arguments: per-frame layers for ``k = 1``; for ``k > 1`` causal
        3D layers with nearest temporal upsampling, so the decoder is exactly causal and
        streams latent step by latent step (``decode_next``)."""
        k = self.temporal_compression
        args: dict[str, Any] = {
            "size": size,
            "regularizer": "kl",
            "latent_channels": self.latent_channels,
            "spatial_compression": self.spatial_compression,
            "temporal_compression": k,
            "temporal_mixing": k > 1,
        }
        if k > 1:
            args["layout"] = {"temporal_upsample": "nearest"}
        if cpu:
            args.update(channels=self.cpu_channels, multipliers=list(self.cpu_multipliers))
        return args


#: ``--tokenizer`` choices of the diffusion path. ``per-frame``: 4 channels at 2× down (a
#: 32² frame → 4×16×16), width 16 on CPU. ``vidtok-4x``: 16 channels at 4× down and 4×
#: in time (4 frames → 16×8×8, a quarter of the numbers per frame), width 8 on CPU
#: (``[1, 2, 4]``: on 9-frame clips about twice the per-frame tokenizer's step time).
LATENT_TOKENIZERS: dict[str, LatentTokenizer] = {
    "per-frame": LatentTokenizer(4, 2, 1, dit_patch=2, cpu_channels=16, cpu_multipliers=(1, 2)),
    "vidtok-4x": LatentTokenizer(16, 4, 4, dit_patch=1, cpu_channels=8, cpu_multipliers=(1, 2, 4)),
}


def latent_tokenizer_config(plan: QuickstartPlan) -> dict[str, Any]:
    """KL VidTok of ``plan.latent_tokenizer``, trained with MSE for PSNR. ``per-frame``: on
    4-frame clips; on CPU presets its width is 16 instead of the ``tiny`` size's 4, which within
    the CPU budget reconstructs Crafter frames far better than a width-4, 4×-down, L1-trained
    one (the benchmark pages give the tokenizer's reconstruction PSNR). The diffusion world
    model decodes its latents anchored on the last real frame (``anchored_decoding``), so this
    error mostly cancels.
    ``vidtok-4x``: on clips of ``1 + 4n`` frames, the world model's (``plan.world_clip``)."""
    geometry = plan.latent_tokenizer
    cpu = not plan.device.startswith("cuda")
    clip = 4 if geometry.temporal_compression == 1 else plan.world_clip
    return {
        "seed_everything": plan.seed,
        "trainer": plan.trainer_config("tokenizer", plan.tokenizer_steps),
        "model": {
            "class_path": "wmkit.tokenizers.lit.VidTokModule",
            "init_args": {
                "lr": 2e-3,
                "l1_weight": 0.0,
                "mse_weight": 1.0,
                "perceptual_weight": 0.0,
                "kl_weight": 1e-6,
                "export_dir": str(plan.out / "tokenizer"),
                "log_videos_every_n_epochs": 0,
                "tokenizer": {
                    "class_path": "wmkit.tokenizers.vidtok.VidTokTokenizer",
                    "init_args": geometry.vidtok_args(plan.tokenizer_size, cpu),
                },
            },
        },
        "data": plan.data_config(with_steps=False, clip_length=clip),
    }
