"""`ClipDataset`: fixed-length clips sampled from any `EpisodeSource`.

A clip is ``clip_length`` frames taken every ``frame_skip`` frames from one episode, read
as a window (never the whole episode). Two modes:

- ``sequential``: every clip start ``0, stride, 2·stride, ...`` of every episode, in order
  (evaluation, token caches). Under DDP, Lightning's ``DistributedSampler`` gives each rank
  a disjoint share of these indices.
- ``random``: ``samples_per_epoch`` clips per epoch; draw ``i`` picks an episode (weighted by
  its number of valid starts) and a start uniformly, from a generator seeded by
  ``(seed, i)``, so sampling is reproducible and independent of the worker count.
  ``RandomClipSampler`` hands out draws ``epoch·N + i`` so every epoch sees new clips, and
  splits them between DDP ranks.

Items are dicts: ``frames`` ``float32 [T, C, H, W]`` in [-1, 1] (the model-side layout, so
the default collate makes ``[B, T, C, H, W]``), and when the source has them ``actions``
``[T, *action_shape]``, ``rewards`` ``float32 [T]`` and ``dones`` ``bool [T]``, plus
``episode`` and ``start``. With ``frame_skip = k`` the action of clip step ``t`` is the
action taken at source frame ``start + t·k`` (the first of its ``k`` frames; sticky-action
recordings repeat it) and the reward is the sum over those ``k`` frames; ``done`` is any.

Final observations: an episode whose source stores the observation after its last action
(``EpisodeStore.has_final_frame``) has one more frame than steps, and clips may end on it,
so the last transition, the one a termination usually sits on, is trained like any other.
That frame has no action of its own: its step is padded (the last action repeated, reward 0,
not done) and ``step_mask`` ``bool [T]`` is False there. Models that read step ``t`` for
transition ``(frame t, action t, frame t + 1)`` never reach it; those that predict reward
``t`` from frames up to ``t`` alone (the AR world model) must mask it. ``final_frames=False``
turns this off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler

from wmkit.core.data.source import EpisodeSource

__all__ = ["ClipDataset", "RandomClipSampler", "split_episodes"]


def _pad_step(values: np.ndarray, key: str) -> np.ndarray:
    """``values`` with one padded step appended: the last action again, reward 0, not done."""
    pad = values[-1:] if key == "actions" else np.zeros_like(values[-1:])
    return np.concatenate([values, pad])


def split_episodes(
    num_episodes: int, fractions: Sequence[float] = (0.9, 0.05, 0.05), seed: int = 0
) -> dict[str, list[int]]:
    """Deterministic train/val/test split *by episode* (a clip never straddles splits).

    Every split with a positive fraction gets at least one episode when there are enough.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers; got {fractions}")
    order = np.random.default_rng(seed).permutation(num_episodes)
    total = sum(fractions)
    sizes = [round(f / total * num_episodes) for f in fractions]
    for k in (1, 2):  # val/test not empty when asked for and possible
        if fractions[k] > 0 and sizes[k] == 0 and num_episodes >= 3:
            sizes[k] = 1
    sizes[0] = num_episodes - sizes[1] - sizes[2]
    if fractions[0] > 0 and sizes[0] < 1:
        raise ValueError(f"{num_episodes} episodes are too few to split as {tuple(fractions)}")
    bounds = np.cumsum([0, *sizes])
    names = ("train", "val", "test")
    return {n: sorted(order[bounds[i] : bounds[i + 1]].tolist()) for i, n in enumerate(names)}


class ClipDataset(Dataset):
    """Fixed-length clips from an ``EpisodeSource``.

    Args:
        source: where the episodes come from.
        clip_length: frames per clip.
        frame_skip: take every ``frame_skip``-th frame.
        mode: ``"random"`` or ``"sequential"``.
        episodes: indices of the episodes to use (a split); default all.
        stride: distance between consecutive clip starts in sequential mode, in source
            frames; default ``clip_length * frame_skip`` (non-overlapping).
        samples_per_epoch: length of a random-mode epoch; default the number of
            non-overlapping clips.
        seed: random-mode seed.
        resolution: resize frames to ``resolution`` x ``resolution`` (area) if given.
        with_steps: include actions/rewards/dones (and ``step_mask``) when the source has
            them.
        final_frames: let clips end on an episode's final observation when the source has
            one (see the module docstring).
    """

    def __init__(
        self,
        source: EpisodeSource,
        clip_length: int,
        frame_skip: int = 1,
        mode: Literal["random", "sequential"] = "random",
        episodes: Sequence[int] | None = None,
        stride: int | None = None,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        resolution: int | None = None,
        with_steps: bool = True,
        final_frames: bool = True,
    ) -> None:
        if clip_length < 1 or frame_skip < 1:
            raise ValueError(
                f"clip_length and frame_skip must be >= 1; got {clip_length}, {frame_skip}"
            )
        if mode not in ("random", "sequential"):
            raise ValueError(f"mode must be 'random' or 'sequential'; got {mode!r}")
        self.source = source
        self.clip_length, self.frame_skip, self.mode = clip_length, frame_skip, mode
        self.span = (clip_length - 1) * frame_skip + 1  # source frames one clip covers
        self.stride = stride or clip_length * frame_skip
        self.seed, self.resolution = seed, resolution
        self.with_steps = with_steps and source.action_spec is not None
        chosen = list(range(len(source))) if episodes is None else list(episodes)
        has_final = getattr(source, "has_final_frame", None)
        self.final_frames = bool(final_frames) and callable(has_final)
        final = [bool(has_final(e)) if self.final_frames else False for e in chosen]  # type: ignore[misc]
        # frames per episode: its steps, plus the final observation when it is used
        lengths = np.array([source.episode_length(e) for e in chosen], np.int64) + final
        keep = lengths >= self.span
        self.episodes = [e for e, k in zip(chosen, keep) if k]
        self.num_starts = (lengths[keep] - self.span + 1).astype(np.int64)
        if not self.episodes:
            longest = int(lengths.max()) if len(lengths) else 0
            raise ValueError(
                f"no episode is long enough for clips of {clip_length} frames with frame_skip "
                f"{frame_skip} ({self.span} source frames); the longest has {longest}"
            )
        self._seq = [
            (e, s)
            for e, n in zip(self.episodes, self.num_starts)
            for s in range(0, int(n), self.stride)
        ]
        non_overlapping = int(sum(max(1, n // (clip_length * frame_skip)) for n in self.num_starts))
        self.samples_per_epoch = samples_per_epoch or non_overlapping
        self._weights = self.num_starts / self.num_starts.sum()

    def __len__(self) -> int:
        return len(self._seq) if self.mode == "sequential" else self.samples_per_epoch

    def clip_location(self, index: int) -> tuple[int, int]:
        """``(episode, start)`` of item ``index`` (random mode: of draw ``index``, any
        non-negative integer)."""
        if self.mode == "sequential":
            if not 0 <= index < len(self):
                raise IndexError(f"clip index {index} out of range [0, {len(self)})")
            return self._seq[index]
        if index < 0:
            raise IndexError(f"random-mode draw must be >= 0; got {index}")
        rng = np.random.default_rng([self.seed, index])
        k = int(rng.choice(len(self.episodes), p=self._weights))
        return self.episodes[k], int(rng.integers(0, self.num_starts[k]))

    def __getitem__(self, index: int) -> dict[str, Any]:
        episode, start = self.clip_location(index)
        stop = start + self.span
        frames = self.source.read_frames(episode, start, stop)[:: self.frame_skip]
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        video = video.float().div_(127.5).sub_(1.0)  # [T, C, H, W]
        if self.resolution is not None and tuple(video.shape[-2:]) != (self.resolution,) * 2:
            video = F.interpolate(video, size=(self.resolution,) * 2, mode="area").clamp_(-1, 1)
        item: dict[str, Any] = {"frames": video, "episode": episode, "start": start}
        if self.with_steps:
            length = self.source.episode_length(episode)
            valid = np.ones(stop - start, bool)
            if stop > length:  # the clip ends on the final observation: pad its step
                valid[-1] = False
                lo = min(start, length - 1)  # a one-frame clip still needs the last action
                steps = self.source.read_steps(episode, lo, length)
                steps = {key: _pad_step(v, key)[start - lo :] for key, v in steps.items()}
            else:
                steps = self.source.read_steps(episode, start, stop)
            k = self.frame_skip
            item["step_mask"] = torch.from_numpy(
                np.logical_and.reduceat(valid, np.arange(0, len(valid), k)) if k > 1 else valid
            )
            if "actions" in steps:
                item["actions"] = torch.from_numpy(np.ascontiguousarray(steps["actions"][::k]))
            if "rewards" in steps:
                r = steps["rewards"].astype(np.float32)
                r = np.add.reduceat(r, np.arange(0, len(r), k)) if k > 1 else r
                item["rewards"] = torch.from_numpy(np.ascontiguousarray(r))
            if "dones" in steps:
                d = steps["dones"].astype(bool)
                d = np.logical_or.reduceat(d, np.arange(0, len(d), k)) if k > 1 else d
                item["dones"] = torch.from_numpy(np.ascontiguousarray(d))
        return item


def _world(num_replicas: int | None = None, rank: int | None = None) -> tuple[int, int]:
    """``(num_replicas, rank)``, each defaulting to the initialised process group's (else 1
    and 0)."""
    world, this_rank = (
        (dist.get_world_size(), dist.get_rank())
        if dist.is_available() and dist.is_initialized()
        else (1, 0)
    )
    return (world if num_replicas is None else num_replicas, this_rank if rank is None else rank)


class RandomClipSampler(DistributedSampler):
    """Draw ids for a random-mode ``ClipDataset``: epoch ``e`` yields ``e·N + i`` for this
    rank's share of ``i`` in ``[0, N)`` (rank ``r`` of ``W`` takes ``i ≡ r mod W``).

    It is a ``DistributedSampler``, so Lightning keeps it under DDP and calls ``set_epoch``.
    World size and rank default to the initialised process group (else 1 and 0). ``start``
    skips that many of this rank's draws in the next iteration only (a run resumed mid-epoch:
    ``ResumableLoader``).
    """

    def __init__(
        self, dataset: ClipDataset, num_replicas: int | None = None, rank: int | None = None
    ) -> None:
        if dataset.mode != "random":
            raise ValueError("RandomClipSampler needs a ClipDataset in random mode")
        num_replicas, rank = _world(num_replicas, rank)
        super().__init__(dataset, num_replicas, rank, shuffle=False, drop_last=True)
        self.start = 0

    def __iter__(self):  # type: ignore[override]
        n = len(self.dataset)  # type: ignore[arg-type]
        base = self.epoch * n
        draws = range(base + self.rank, base + n, self.num_replicas)
        start, self.start = self.start, 0
        return iter(draws[start : self.num_samples])

    def __len__(self) -> int:
        return self.num_samples
