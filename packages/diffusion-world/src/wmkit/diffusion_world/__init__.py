"""wmkit.diffusion_world: causal, action-conditioned video diffusion world models on diffusers
(Diffusion Forcing training, Vid2World causalization and causal action guidance)."""

from wmkit.diffusion_world.action_embedding import ActionEmbedding
from wmkit.diffusion_world.causal_layers import (
    TEMPORAL_CONV_RULES,
    CausalAttnProcessor,
    CausalTemporalConv3d,
    FrameGroupNorm,
    FramePositionTimesteps,
    transfer_temporal_kernel,
)
from wmkit.diffusion_world.causalize import (
    SVD_UNET_SIZES,
    CausalSVDUNet,
    causalize,
    load_diffusers_network,
    load_diffusers_unet,
    tiny_svd_unet_config,
)
from wmkit.diffusion_world.diffusers_network import CausalDiffusersNetwork
from wmkit.diffusion_world.dit import DIT_SIZES, SpatioTemporalDiT
from wmkit.diffusion_world.edm import (
    EDMNextFrameSampler,
    edm_scalings,
    sample_training_sigmas,
    sigma_to_level,
)
from wmkit.diffusion_world.flow import (
    FlowNextFrameSampler,
    flow_noise,
    flow_velocity,
    gaussian_velocity_skip,
    sample_flow_times,
)
from wmkit.diffusion_world.frame_denoiser import FrameDenoiser
from wmkit.diffusion_world.latent_scale import latent_change_scale
from wmkit.diffusion_world.networks import build_network, causal_diffusers_network
from wmkit.diffusion_world.objectives import (
    DDPMObjective,
    EDMObjective,
    FlowObjective,
    Objective,
    build_objective,
)
from wmkit.diffusion_world.reward_head import RewardHead
from wmkit.diffusion_world.sampler import NextFrameSampler, SamplingConfig, guided_prediction
from wmkit.diffusion_world.schedulers import (
    SAMPLERS,
    add_frame_noise,
    frame_target,
    make_sampling_scheduler,
    make_training_scheduler,
)
from wmkit.diffusion_world.state import DiffusionState
from wmkit.diffusion_world.temporal_cache import TemporalHistory, TemporalHistoryCache
from wmkit.diffusion_world.transition_heads import HeadsConfig, TransitionHeads
from wmkit.diffusion_world.unet3d import UNET3D_SIZES, CausalUNet3D, tiny_unet3d_config
from wmkit.diffusion_world.vae_tokenizer import VAE_CLASSES, DiffusersVAETokenizer, VAEStream
from wmkit.diffusion_world.wan import (
    WAN_SIZES,
    CausalWanAttnProcessor,
    CausalWanTransformer,
    tiny_wan_config,
)
from wmkit.diffusion_world.window_sampler import WindowSampler
from wmkit.diffusion_world.world_model import DiffusionLoss, DiffusionWorldModel

__all__ = [
    "DIT_SIZES",
    "SAMPLERS",
    "SVD_UNET_SIZES",
    "TEMPORAL_CONV_RULES",
    "UNET3D_SIZES",
    "VAE_CLASSES",
    "WAN_SIZES",
    "ActionEmbedding",
    "CausalAttnProcessor",
    "CausalDiffusersNetwork",
    "CausalSVDUNet",
    "CausalTemporalConv3d",
    "CausalUNet3D",
    "CausalWanAttnProcessor",
    "CausalWanTransformer",
    "DDPMObjective",
    "DiffusersVAETokenizer",
    "DiffusionLoss",
    "DiffusionState",
    "DiffusionWorldModel",
    "EDMNextFrameSampler",
    "EDMObjective",
    "FlowNextFrameSampler",
    "FlowObjective",
    "FrameDenoiser",
    "FrameGroupNorm",
    "FramePositionTimesteps",
    "HeadsConfig",
    "NextFrameSampler",
    "Objective",
    "RewardHead",
    "SamplingConfig",
    "SpatioTemporalDiT",
    "TemporalHistory",
    "TemporalHistoryCache",
    "TransitionHeads",
    "VAEStream",
    "WindowSampler",
    "add_frame_noise",
    "build_network",
    "build_objective",
    "causal_diffusers_network",
    "causalize",
    "edm_scalings",
    "flow_noise",
    "flow_velocity",
    "frame_target",
    "gaussian_velocity_skip",
    "guided_prediction",
    "latent_change_scale",
    "load_diffusers_network",
    "load_diffusers_unet",
    "make_sampling_scheduler",
    "make_training_scheduler",
    "sample_flow_times",
    "sample_training_sigmas",
    "sigma_to_level",
    "tiny_svd_unet_config",
    "tiny_unet3d_config",
    "tiny_wan_config",
    "transfer_temporal_kernel",
]
