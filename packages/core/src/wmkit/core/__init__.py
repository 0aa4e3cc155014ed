"""wmkit-core: the contract every wmkit package builds on (DESIGN.md §3)."""

from importlib.metadata import PackageNotFoundError, version

from wmkit.core.action_spec import ActionKind, ActionSpec
from wmkit.core.batch import Batch
from wmkit.core.change_gate import ChangeGate
from wmkit.core.cli import Command
from wmkit.core.components import build_component, init_config
from wmkit.core.devices import follow_device
from wmkit.core.gated_world_model import GatedState, GatedWorldModel
from wmkit.core.latent_steps import (
    BufferedState,
    LatentStep,
    LatentStepModel,
    buffered_rollout,
    buffered_step,
    group_actions,
    num_latent_steps,
    start_buffered,
    step_action_spec,
    trim_context,
)
from wmkit.core.pretrained import (
    PretrainedLoadError,
    PretrainedMixin,
    load_pretrained,
    resolve_model_class,
)
from wmkit.core.protocols import (
    LatentActionModel,
    Latents,
    Rollout,
    StepOutput,
    Tokenizer,
    WorldModel,
    WorldState,
)
from wmkit.core.stage import make_stage, run_stage
from wmkit.core.streaming import StreamingDecoder, streamed_frames
from wmkit.core.video import (
    check_frames,
    check_video,
    frame_grid,
    resize_video,
    to_float_video,
    to_uint8_frames,
)
from wmkit.core.video_io import read_video, write_gif, write_video
from wmkit.core.world_model import (
    MarkovStepMixin,
    StepwiseRolloutMixin,
    check_world_model_inputs,
)

try:
    __version__ = version("wmkit-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ActionKind",
    "ActionSpec",
    "Batch",
    "BufferedState",
    "ChangeGate",
    "Command",
    "GatedState",
    "GatedWorldModel",
    "LatentActionModel",
    "LatentStep",
    "LatentStepModel",
    "Latents",
    "MarkovStepMixin",
    "PretrainedLoadError",
    "PretrainedMixin",
    "Rollout",
    "StepOutput",
    "StepwiseRolloutMixin",
    "StreamingDecoder",
    "Tokenizer",
    "WorldModel",
    "WorldState",
    "__version__",
    "buffered_rollout",
    "buffered_step",
    "build_component",
    "check_frames",
    "check_video",
    "check_world_model_inputs",
    "follow_device",
    "frame_grid",
    "group_actions",
    "init_config",
    "load_pretrained",
    "make_stage",
    "num_latent_steps",
    "read_video",
    "resize_video",
    "resolve_model_class",
    "run_stage",
    "start_buffered",
    "step_action_spec",
    "streamed_frames",
    "to_float_video",
    "to_uint8_frames",
    "trim_context",
    "write_gif",
    "write_video",
]
