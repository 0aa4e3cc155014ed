"""wmkit.latent_action: latent actions learned from action-free video (IGOR, LAPA, Genie)."""

from wmkit.latent_action.array_source import ArrayEpisodes
from wmkit.latent_action.imitation import ImitationResult, LatentDecoderWorldModel, imitate
from wmkit.latent_action.labelled_source import (
    LatentActionSource,
    infer_episode,
    label_episodes,
)
from wmkit.latent_action.latent_action_model import (
    SIZES,
    LatentActionAutoencoder,
    LatentActionOutput,
)
from wmkit.latent_action.lit import LatentActionModule, psnr
from wmkit.latent_action.mapper import ActionMapper, MappedWorldModel, fit_action_mapper
from wmkit.latent_action.probe import (
    ProbeReport,
    ProbeResult,
    collect_transitions,
    fit_probe,
    latent_features,
    nearest_neighbour_curve,
    plot_predictiveness,
    probe_latent_actions,
)
from wmkit.latent_action.quantizer import ActionBottleneck, BottleneckOutput, code_statistics

__all__ = [
    "SIZES",
    "ActionBottleneck",
    "ActionMapper",
    "ArrayEpisodes",
    "BottleneckOutput",
    "ImitationResult",
    "LatentActionAutoencoder",
    "LatentActionModule",
    "LatentActionOutput",
    "LatentActionSource",
    "LatentDecoderWorldModel",
    "MappedWorldModel",
    "ProbeReport",
    "ProbeResult",
    "code_statistics",
    "collect_transitions",
    "fit_action_mapper",
    "fit_probe",
    "imitate",
    "infer_episode",
    "label_episodes",
    "latent_features",
    "nearest_neighbour_curve",
    "plot_predictiveness",
    "probe_latent_actions",
    "psnr",
]
