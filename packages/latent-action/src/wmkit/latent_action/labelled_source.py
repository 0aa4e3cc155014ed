"""Label action-free video with latent actions, so any world model trains on it.

``LatentActionSource`` wraps an ``EpisodeSource`` and yields the latent actions of a
``wmkit.core.LatentActionModel`` as the episodes' actions, with the model's
``latent_action_spec`` as the ``action_spec``: a world model trained through the protocol
(``ClipDataset``, ``EpisodeDataModule``) never knows the actions were inferred (LAPA's
latent-action pretraining, Genie's latent-action world model, IGOR's latent world model).
``label_episodes`` writes the same thing to disk as a wmkit episode dataset, for the
``wmkit <stage> fit`` commands that take a ``path``.

Alignment: latent action ``t`` explains the transition from frame ``t`` to ``t + 1``, the
position of the real action ``t``. An episode whose source stores its final observation
(``EpisodeStore.has_final_frame``: the frame after the last step) is labelled whole, and
keeps that frame. Otherwise its last frame has no next frame and so no latent action; that
step is dropped, so the labelled episode is one frame shorter, and its reward and done are
folded into the step before (the episode's return and its termination are kept, one step
early). Rewards and dones are the source's; action-free video has none (0 and not done: a
video that ends has not terminated).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from wmkit.core import ActionSpec, LatentActionModel, to_float_video
from wmkit.core.data.source import EpisodeSource, StepData

__all__ = ["LatentActionSource", "infer_episode", "label_episodes"]


def _has_final(source: EpisodeSource, episode: int) -> bool:
    has_final = getattr(source, "has_final_frame", None)
    return bool(has_final(episode)) if callable(has_final) else False


@torch.no_grad()
def infer_episode(
    model: LatentActionModel, source: EpisodeSource, episode: int, device: str = "cpu"
) -> np.ndarray:
    """Latent actions of every transition of ``episode``: ``[T - 1, *spec.action_shape]``, or
    ``[T, ...]`` when the source stores its final observation."""
    n = source.episode_length(episode) + _has_final(source, episode)
    if n < 2:
        raise ValueError(f"episode {episode} has {n} frame(s); a latent action needs two")
    frames = to_float_video(source.read_frames(episode, 0, n), device=device)  # [1, T, C, H, W]
    return model.infer(frames)[0].cpu().numpy()


class LatentActionSource:
    """An ``EpisodeSource`` whose actions are a latent action model's inferences.

    Args:
        source: the (action-free or labelled) episodes; its own actions are ignored.
        model: any ``wmkit.core.LatentActionModel``.
        device: where the model runs.

    Latent actions are computed once per episode, on first access, and cached.
    """

    def __init__(self, source: EpisodeSource, model: LatentActionModel, device: str = "cpu"):
        if not isinstance(model, LatentActionModel):
            raise TypeError(
                f"model must satisfy wmkit.core.LatentActionModel; got {type(model).__name__}"
            )
        self.source, self.model, self.device = source, model, device
        self._cache: dict[int, np.ndarray] = {}

    @property
    def action_spec(self) -> ActionSpec:
        return self.model.latent_action_spec

    @property
    def fps(self) -> float:
        return self.source.fps

    def __len__(self) -> int:
        return len(self.source)

    def episode_length(self, episode: int) -> int:
        return self.source.episode_length(episode) - (not _has_final(self.source, episode))

    def has_final_frame(self, episode: int) -> bool:
        """Whether ``episode`` keeps its source's final observation (labelled whole)."""
        return _has_final(self.source, episode)

    def _check(self, episode: int, start: int, stop: int, frames: bool = False) -> None:
        final = self.has_final_frame(episode)
        n = self.episode_length(episode) + (frames and final)
        if not 0 <= start < stop <= n:
            why = "" if final else " (one frame shorter than the source: its last has no action)"
            raise IndexError(
                f"window [{start}, {stop}) outside labelled episode {episode} of {n} "
                f"{'frames' if frames else 'steps'}{why}"
            )

    def latent_actions(self, episode: int) -> np.ndarray:
        """All latent actions of ``episode``, ``[T - 1, *spec.action_shape]`` (cached)."""
        if episode not in self._cache:
            self._cache[episode] = infer_episode(self.model, self.source, episode, self.device)
        return self._cache[episode]

    def read_frames(self, episode: int, start: int, stop: int) -> np.ndarray:
        self._check(episode, start, stop, frames=True)
        return self.source.read_frames(episode, start, stop)

    def read_steps(self, episode: int, start: int, stop: int) -> StepData:
        self._check(episode, start, stop)
        dropped = int(stop == self.episode_length(episode) and not self.has_final_frame(episode))
        steps = self.source.read_steps(episode, start, stop + dropped)
        k = stop + dropped - start
        rewards = np.asarray(steps.get("rewards", np.zeros(k)), np.float32)
        dones = np.asarray(steps.get("dones", np.zeros(k, bool)), bool)
        if dropped:  # fold the dropped last step into the one before
            rewards = np.append(rewards[:-2], rewards[-2] + rewards[-1]).astype(np.float32)
            dones = np.append(dones[:-2], dones[-2] or dones[-1])
        return {"actions": self.latent_actions(episode)[start:stop], "rewards": rewards,
                "dones": dones}  # fmt: skip


def label_episodes(
    model: LatentActionModel,
    source: EpisodeSource,
    out: str | os.PathLike,
    episodes: list[int] | None = None,
    device: str = "cpu",
    env: str = "latent-actions",
) -> Path:
    """Write ``source`` labelled with ``model``'s latent actions as a wmkit episode dataset.

    Frames are stored as compressed arrays (exact); the manifest's ``action_spec`` is the
    latent action spec, so ``EpisodeDataModule(path=out)`` trains any world model on it.
    Returns ``out``.
    """
    from wmkit.core.data.episode_store import EpisodeWriter

    labelled = LatentActionSource(source, model, device)
    writer = EpisodeWriter(
        out,
        action_spec=labelled.action_spec,
        fps=labelled.fps,
        env=env,
        policy="latent actions inferred by " + type(model).__name__,
        frame_format="npz",
    )
    for ep in range(len(source)) if episodes is None else episodes:
        n = labelled.episode_length(ep)
        steps = labelled.read_steps(ep, 0, n)
        final = labelled.read_frames(ep, n, n + 1)[0] if labelled.has_final_frame(ep) else None
        writer.add_episode(
            labelled.read_frames(ep, 0, n),
            steps["actions"],
            steps["rewards"],
            steps["dones"],
            info={"source_episode": int(ep)},
            final_frame=final,
        )
    writer.close()
    return Path(out)
