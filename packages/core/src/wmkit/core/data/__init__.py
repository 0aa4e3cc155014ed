"""Episode data: recording simulators, the sharded episode format, readers and clip loading.

Heavy or optional pieces (simulators, LeRobot, video folders) are imported from their own
modules, so ``import wmkit.core.data`` stays light.
"""

from wmkit.core.data.clip_dataset import ClipDataset, RandomClipSampler, split_episodes
from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.core.data.episode_store import CorruptDatasetError, EpisodeStore, EpisodeWriter
from wmkit.core.data.importer import import_dataset
from wmkit.core.data.open_source import detect_kind, open_source
from wmkit.core.data.resumable_loader import ResumableLoader, ResumableShuffleSampler
from wmkit.core.data.run_config import data_options
from wmkit.core.data.source import EpisodeSource, StepData

__all__ = [
    "ClipDataset",
    "CorruptDatasetError",
    "EpisodeDataModule",
    "EpisodeSource",
    "EpisodeStore",
    "EpisodeWriter",
    "RandomClipSampler",
    "ResumableLoader",
    "ResumableShuffleSampler",
    "StepData",
    "data_options",
    "detect_kind",
    "import_dataset",
    "open_source",
    "split_episodes",
]
