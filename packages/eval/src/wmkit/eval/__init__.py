"""wmkit-eval: video metrics (PSNR, SSIM, LPIPS, FVD), action controllability, rollout
evaluation against baselines, a throughput harness and visual reports."""

from wmkit.eval.baselines import CopyLastFrame, tokenizer_reconstruction
from wmkit.eval.controllability import ControllabilityResult, delta_psnr, other_actions
from wmkit.eval.frame_metrics import (
    PerStepMean,
    frame_lpips,
    frame_mse,
    frame_psnr,
    frame_ssim,
    psnr_from_mse,
)
from wmkit.eval.frechet import frechet_distance, gaussian_stats
from wmkit.eval.fvd import FrechetVideoDistance, I3DFeatures
from wmkit.eval.heads import HeadScores, describe_heads
from wmkit.eval.i3d import I3D, convert_i3d, preprocess_for_i3d
from wmkit.eval.idm import InverseDynamicsModel, idm_accuracy, train_idm
from wmkit.eval.one_step import score_heads_one_step
from wmkit.eval.report import write_report
from wmkit.eval.rollout import RolloutEvaluation, evaluate_rollouts
from wmkit.eval.throughput import (
    ThroughputResult,
    count_flops,
    hardware_info,
    markdown_table,
    measure,
    write_results,
)

__all__ = [
    "I3D",
    "ControllabilityResult",
    "CopyLastFrame",
    "FrechetVideoDistance",
    "HeadScores",
    "I3DFeatures",
    "InverseDynamicsModel",
    "PerStepMean",
    "RolloutEvaluation",
    "ThroughputResult",
    "convert_i3d",
    "count_flops",
    "delta_psnr",
    "describe_heads",
    "evaluate_rollouts",
    "frame_lpips",
    "frame_mse",
    "frame_psnr",
    "frame_ssim",
    "frechet_distance",
    "gaussian_stats",
    "hardware_info",
    "idm_accuracy",
    "markdown_table",
    "measure",
    "other_actions",
    "preprocess_for_i3d",
    "psnr_from_mse",
    "score_heads_one_step",
    "tokenizer_reconstruction",
    "train_idm",
    "write_report",
    "write_results",
]
