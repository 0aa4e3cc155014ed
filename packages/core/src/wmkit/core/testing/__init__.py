"""``wmkit.core.testing``: the conformance suite and tiny reference models for tests."""

from wmkit.core.testing.configs import check_config_runs
from wmkit.core.testing.conformance import (
    assert_same,
    check_causality,
    check_determinism,
    check_latent_action_model,
    check_protocol,
    check_rejects,
    check_save_load,
    check_tokenizer,
    check_world_model,
)
from wmkit.core.testing.decoding import count_decoded_frames
from wmkit.core.testing.lerobot_dataset import write_lerobot_dataset
from wmkit.core.testing.moving_squares import MovingSquaresEpisodes, moving_squares
from wmkit.core.testing.readme import readme_examples, run_readme_examples
from wmkit.core.testing.streaming import check_streaming_decode
from wmkit.core.testing.suites import LatentActionModelTests, TokenizerTests, WorldModelTests
from wmkit.core.testing.toy_latent_steps import ToyLatentStepWorldModel, ToyVideoTokenizer
from wmkit.core.testing.toys import ToyCompressiveTokenizer, ToyTokenizer, ToyWorldModel
from wmkit.core.testing.training import check_loss_decreases, cpu_trainer

__all__ = [
    "LatentActionModelTests",
    "MovingSquaresEpisodes",
    "TokenizerTests",
    "ToyCompressiveTokenizer",
    "ToyLatentStepWorldModel",
    "ToyTokenizer",
    "ToyVideoTokenizer",
    "ToyWorldModel",
    "WorldModelTests",
    "assert_same",
    "check_causality",
    "check_config_runs",
    "check_determinism",
    "check_latent_action_model",
    "check_loss_decreases",
    "check_protocol",
    "check_rejects",
    "check_save_load",
    "check_streaming_decode",
    "check_tokenizer",
    "check_world_model",
    "count_decoded_frames",
    "cpu_trainer",
    "moving_squares",
    "readme_examples",
    "run_readme_examples",
    "write_lerobot_dataset",
]
