"""Real transitions kept as episodes: what MBPO fine-tunes the world model on and branches
imagined rollouts from.

SB3's replay buffers hold shuffled single transitions; a world model trains on *clips*
(``frames [B, T, C, H, W]``, ``actions [B, T, ...]``, ``rewards``/``dones [B, T]``: the batch
keys of ``wmkit.core.data.EpisodeDataModule``), and imagined rollouts start from real
context clips. :class:`EpisodeReplay` stores whole episodes (frames ``uint8``) and serves both.
Reward ``t`` and done ``t`` follow action ``t``, as in core's datasets. Training clips may
end on an episode's last frame, the observation after its last action, so the transition a
termination sits on is trained too: that frame's step is padded and ``step_mask`` is False
there, as in core's ``ClipDataset``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from wmkit.agents.contexts import ClipContexts
from wmkit.core import ActionSpec, to_float_video

__all__ = ["EpisodeReplay"]


class EpisodeReplay:
    """Episodes of real transitions, oldest dropped beyond ``capacity`` steps.

    Args:
        action_spec: the env's actions.
        capacity: most transitions kept.
    """

    def __init__(self, action_spec: ActionSpec, capacity: int = 100_000) -> None:
        self.action_spec = action_spec
        self.capacity = int(capacity)
        self.episodes: list[dict[str, list[Any]]] = []

    def start_episode(self, frame: np.ndarray) -> None:
        """Begin an episode at its first frame ``uint8 [H, W, C]``."""
        self.episodes.append({"frames": [np.asarray(frame, np.uint8)], "actions": [],
                              "rewards": [], "dones": []})  # fmt: skip

    def add(self, action: Any, reward: float, done: bool, next_frame: np.ndarray) -> None:
        """Append one transition to the current episode."""
        if not self.episodes:
            raise RuntimeError("call start_episode(frame) before add")
        ep = self.episodes[-1]
        ep["actions"].append(np.asarray(action))
        ep["rewards"].append(float(reward))
        ep["dones"].append(float(done))
        ep["frames"].append(np.asarray(next_frame, np.uint8))
        while self.num_steps > self.capacity and len(self.episodes) > 1:
            self.episodes.pop(0)

    @property
    def num_steps(self) -> int:
        return sum(len(ep["actions"]) for ep in self.episodes)

    def _windows(self, length: int, last_frame: bool = False) -> list[tuple[int, int]]:
        """(episode, start) of every clip of ``length`` frames each followed by an action, or
        with ``last_frame`` also those ending on an episode's last frame."""
        return [
            (i, s)
            for i, ep in enumerate(self.episodes)
            if ep["actions"]
            for s in range(len(ep["actions"]) + last_frame - length + 1)
        ]

    def clip(self, episode: int, start: int, length: int) -> dict[str, Tensor]:
        """One clip: ``frames [T, C, H, W]`` in [-1, 1], ``actions [T, ...]``, ``rewards [T]``,
        ``dones [T]`` and ``step_mask [T]`` (no batch dim). A clip ending on the episode's last
        frame pads its step (the last action again, reward 0, not done; ``step_mask`` False)."""
        ep = self.episodes[episode]
        n = len(ep["actions"])
        if not (start >= 0 and length >= 1 and n >= 1 and start + length <= n + 1):
            raise IndexError(f"clip [{start}, {start + length}) outside episode {episode}")
        frames = to_float_video(np.stack(ep["frames"][start : start + length]))[0]  # [T, C, H, W]
        stop = min(start + length, n)
        pad = start + length - stop  # 1 when the clip ends on the last frame
        actions = np.stack(ep["actions"][start:stop] + ep["actions"][n - 1 :] * pad)
        actions_t = torch.as_tensor(actions).to(self.action_spec.dtype)
        mask = torch.ones(length, dtype=torch.bool)
        mask[length - pad :] = False
        return {
            "frames": frames,
            "actions": actions_t.reshape(length, *self.action_spec.action_shape),
            "rewards": torch.tensor(ep["rewards"][start:stop] + [0.0] * pad),
            "dones": torch.tensor(ep["dones"][start:stop] + [0.0] * pad),
            "step_mask": mask,
        }

    def sample_clips(self, n: int, length: int, rng: np.random.Generator) -> dict[str, Tensor]:
        """``n`` random clips of ``length`` frames stacked into a batch (keys as ``clip``)."""
        windows = self._windows(length, last_frame=True)
        if not windows:
            raise ValueError(
                f"no episode has {length} transitions yet ({self.num_steps} stored); collect "
                "more real steps or use shorter clips"
            )
        picks = rng.integers(0, len(windows), size=n)
        clips = [self.clip(*windows[i], length) for i in picks]
        return {k: torch.stack([c[k] for c in clips]) for k in clips[0]}

    def dataloader(
        self, clip_length: int, batch_size: int, num_batches: int, seed: int = 0
    ) -> DataLoader:
        """A loader of ``num_batches`` random clip batches with the standard batch keys, for a
        world model's LightningModule (``trainer.fit(module, train_dataloaders=...)``)."""
        windows = self._windows(clip_length, last_frame=True)
        if not windows:
            raise ValueError(f"no episode has {clip_length} transitions yet; collect more steps")
        rng = np.random.default_rng(seed)
        picks = [windows[i] for i in rng.integers(0, len(windows), size=num_batches * batch_size)]
        return DataLoader(_Clips(self, picks, clip_length), batch_size=batch_size, shuffle=False)

    def contexts(self, context_length: int = 1, max_clips: int | None = None,
                 rng: np.random.Generator | None = None) -> ClipContexts:  # fmt: skip
        """Real start clips of ``context_length`` frames (and actions) for imagination."""
        windows = self._windows(context_length)
        if not windows:
            raise ValueError(f"no episode has {context_length} transitions yet")
        if max_clips is not None and len(windows) > max_clips:
            rng = rng or np.random.default_rng(0)
            windows = [windows[i] for i in rng.choice(len(windows), max_clips, replace=False)]
        clips = [self.clip(*w, context_length) for w in windows]
        frames = torch.stack([c["frames"] for c in clips])  # [N, T0, C, H, W]
        actions = torch.stack([c["actions"] for c in clips])  # [N, T0, ...]
        return ClipContexts(frames, actions if context_length > 1 else None)


class _Clips(Dataset):
    def __init__(self, replay: EpisodeReplay, picks: list[tuple[int, int]], length: int) -> None:
        self.replay, self.picks, self.length = replay, picks, length

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.replay.clip(*self.picks[i], self.length)
