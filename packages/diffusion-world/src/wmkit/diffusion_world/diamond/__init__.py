"""DIAMOND (Alonso et al. 2024, "Diffusion for World Modeling: Visual Details Matter in
Atari", arXiv:2405.12399; eloialonso/diamond): a frame-level EDM diffusion world model, with
the released Atari 100k and CS:GO checkpoints convertible by ``wmkit convert diamond``."""

from wmkit.diffusion_world.diamond.blocks import (
    AdaGroupNorm,
    FourierFeatures,
    ResBlock,
    SelfAttention2d,
)
from wmkit.diffusion_world.diamond.denoiser import DenoiserLoss, DiamondDenoiser
from wmkit.diffusion_world.diamond.network import DIAMOND_NETWORK_SIZES, DiamondNetwork
from wmkit.diffusion_world.diamond.preconditioning import Conditioners, DiamondEDM
from wmkit.diffusion_world.diamond.reward_end import (
    DiamondRewardEnd,
    RewardEndConfig,
    RewardEndOutput,
)
from wmkit.diffusion_world.diamond.sampler import (
    DiamondSample,
    DiamondSampler,
    DiamondSamplerConfig,
    build_sigmas,
)
from wmkit.diffusion_world.diamond.state import DiamondState
from wmkit.diffusion_world.diamond.unet import DiamondUNet
from wmkit.diffusion_world.diamond.upsampling import (
    FAST_UPSAMPLING,
    DiamondUpsamplerConfig,
    upsample_next_obs,
)
from wmkit.diffusion_world.diamond.world_model import DiamondWorldModel, build_component

__all__ = [
    "DIAMOND_NETWORK_SIZES",
    "FAST_UPSAMPLING",
    "AdaGroupNorm",
    "Conditioners",
    "DenoiserLoss",
    "DiamondDenoiser",
    "DiamondEDM",
    "DiamondNetwork",
    "DiamondRewardEnd",
    "DiamondSample",
    "DiamondSampler",
    "DiamondSamplerConfig",
    "DiamondState",
    "DiamondUNet",
    "DiamondUpsamplerConfig",
    "DiamondWorldModel",
    "FourierFeatures",
    "ResBlock",
    "RewardEndConfig",
    "RewardEndOutput",
    "SelfAttention2d",
    "build_component",
    "build_sigmas",
    "upsample_next_obs",
]
