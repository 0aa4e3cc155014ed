"""DIAMOND's reward/termination model (Alonso et al., 2024, section 3 and appendix C).

A recurrent classifier over transitions ``(obs_t, a_t, next_obs_t)``: each step's two frames
are stacked on channels (6 for RGB) and encoded by a convolutional stack of
:class:`~wmkit.diffusion_world.diamond.blocks.ResBlocks` whose adaptive group norms read the
action's embedding (the action *is* the conditioning vector), the feature map is flattened
and fed to a one-layer LSTM, and a small MLP reads 5 logits per step: 3 for the clipped
reward sign ``{-1, 0, +1}`` and 2 for the episode end ``{continue, terminal}``.

In imagination DIAMOND burns the LSTM in once on the conditioning frames, then steps it one
generated frame at a time with the carried ``(h, c)`` and samples reward and end from the
two categoricals; :meth:`DiamondRewardEnd.forward` on ``T`` steps at once equals ``T`` calls
of one step each with the state carried.

Parameter names equal the released checkpoints' ``rew_end_model.*`` keys with that prefix
stripped, so ``load_state_dict(strict=True)`` takes them as they are.
:meth:`RewardEndConfig.from_state_dict` reads the configuration back from those shapes.

Where we differ: the training loss takes transitions as tensors; upstream's batch
bookkeeping (swapping the padding frame after a death for the true final observation) is
the data pipeline's job here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.nn_init import init_lstm
from wmkit.diffusion_world.diamond.blocks import Downsample, ResBlocks

__all__ = [
    "DiamondRewardEnd",
    "RewardEndConfig",
    "RewardEndLoss",
    "RewardEndOutput",
    "RewardEndSample",
    "init_lstm",
]

LSTMState = tuple[Tensor, Tensor]


@dataclass
class RewardEndConfig:
    """Sizes of :class:`DiamondRewardEnd`; the defaults are the released Atari 100k model's.

    Args:
        num_actions: discrete actions (the game's minimal action set: 9 for MsPacman).
        lstm_dim: LSTM hidden width.
        img_channels: channels of one frame (the encoder reads two stacked).
        img_size: frame height and width in pixels (fixes the LSTM's input width).
        cond_channels: action-embedding width, the adaptive norms' conditioning.
        depths: residual blocks per encoder stage.
        channels: channels per encoder stage.
        attn_depths: per stage, whether its blocks have self-attention (0/1).
    """

    num_actions: int
    lstm_dim: int = 512
    img_channels: int = 3
    img_size: int = 64
    cond_channels: int = 128
    depths: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    channels: list[int] = field(default_factory=lambda: [32, 32, 32, 32])
    attn_depths: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def __post_init__(self) -> None:
        n = len(self.depths)
        if n < 1 or len(self.channels) != n or len(self.attn_depths) != n:
            raise ValueError(
                "depths, channels and attn_depths must be non-empty and of one length; got "
                f"{self.depths}, {self.channels}, {self.attn_depths}"
            )
        sizes = {
            "num_actions": self.num_actions,
            "lstm_dim": self.lstm_dim,
            "img_channels": self.img_channels,
            "img_size": self.img_size,
            "cond_channels": self.cond_channels,
        }
        for name, value in sizes.items():
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if min(self.depths) < 1 or min(self.channels) < 1:
            raise ValueError(
                f"depths and channels must be >= 1; got {self.depths}, {self.channels}"
            )
        if self.img_size % 2 ** (n - 1):
            raise ValueError(
                f"img_size must be divisible by 2**(len(depths) - 1) = {2 ** (n - 1)} (one "
                f"stride-2 convolution before each stage after the first); got {self.img_size}"
            )

    @property
    def feature_size(self) -> int:
        """Height and width of the encoder's output feature map."""
        return self.img_size // 2 ** (len(self.depths) - 1)

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> RewardEndConfig:
        """The configuration a released ``rew_end_model.*`` state dict (prefix stripped) was
        built with, read from its tensor shapes.

        Raises:
            ValueError: a required key is missing or the shapes fit no configuration.
        """
        required = (
            "act_emb.weight",
            "encoder.conv_in.weight",
            "lstm.weight_ih_l0",
            "lstm.weight_hh_l0",
        )
        missing = [k for k in required if k not in state]
        if missing:
            raise ValueError(
                f"not a DIAMOND reward/end state dict (prefix 'rew_end_model.' stripped): "
                f"missing {missing}"
            )
        num_actions, cond_channels = state["act_emb.weight"].shape
        stages: dict[int, dict[str, int]] = {}
        for key, value in state.items():
            m = re.fullmatch(
                r"encoder\.blocks\.(\d+)\.resblocks\.(\d+)\.(conv1\.weight|attn\..*)", key
            )
            if m is None:
                continue
            stage = stages.setdefault(int(m.group(1)), {"depth": 0, "attn": 0, "channels": 0})
            stage["depth"] = max(stage["depth"], int(m.group(2)) + 1)
            if m.group(3) == "conv1.weight":
                stage["channels"] = int(value.shape[0])
            else:
                stage["attn"] = 1
        if not stages or sorted(stages) != list(range(len(stages))) or len(stages) < 2:
            raise ValueError(
                f"DIAMOND reward/end encoder stages must be encoder.blocks.0..N (N >= 1, the "
                f"last being the attention stage); found {sorted(stages)}"
            )
        body = [stages[i] for i in range(len(stages) - 1)]  # the last stage is the fixed one
        channels = [s["channels"] for s in body]
        lstm_in = int(state["lstm.weight_ih_l0"].shape[1])
        side = round((lstm_in / channels[-1]) ** 0.5)
        if side * side * channels[-1] != lstm_in:
            raise ValueError(
                f"lstm.weight_ih_l0 input width {lstm_in} is not channels[-1] ({channels[-1]}) "
                "times a square feature map"
            )
        return cls(
            num_actions=int(num_actions),
            lstm_dim=int(state["lstm.weight_hh_l0"].shape[1]),
            img_channels=int(state["encoder.conv_in.weight"].shape[1]) // 2,
            img_size=side * 2 ** (len(body) - 1),
            cond_channels=int(cond_channels),
            depths=[s["depth"] for s in body],
            channels=channels,
            attn_depths=[s["attn"] for s in body],
        )


class RewardEndOutput(NamedTuple):
    """``logits_rew [B, T, 3]`` (clipped reward ``-1/0/+1``), ``logits_end [B, T, 2]``
    (continue / terminal) and the LSTM ``state`` ``(h, c)``, each ``[1, B, lstm_dim]``."""

    logits_rew: Tensor
    logits_end: Tensor
    state: LSTMState


class RewardEndSample(NamedTuple):
    """``reward`` float ``[B, T]`` in ``{-1, 0, 1}`` and ``done`` bool ``[B, T]``."""

    reward: Tensor
    done: Tensor


class RewardEndLoss(NamedTuple):
    """``loss = loss_rew + loss_end`` (cross-entropies, mean over the unmasked steps)."""

    loss: Tensor
    loss_rew: Tensor
    loss_end: Tensor


class RewardEndEncoder(nn.Module):
    """``conv_in``, then one :class:`ResBlocks` per stage with a stride-2 convolution before
    every stage after the first, then a final stage of two attention blocks at the deepest
    width. Every block is conditioned on ``cond`` (the action embedding).

    Args:
        in_channels: input channels (two stacked frames).
        cond_channels: conditioning width.
        depths: blocks per stage.
        channels: channels per stage.
        attn_depths: per stage, whether its blocks have self-attention.
    """

    def __init__(
        self,
        in_channels: int,
        cond_channels: int,
        depths: list[int],
        channels: list[int],
        attn_depths: list[int],
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1)
        stages = []
        for i, n in enumerate(depths):
            c_in, c = channels[max(0, i - 1)], channels[i]
            stages.append(
                ResBlocks([c_in] + [c] * (n - 1), [c] * n, cond_channels, bool(attn_depths[i]))
            )
        stages.append(ResBlocks([channels[-1]] * 2, [channels[-1]] * 2, cond_channels, attn=True))
        self.blocks = nn.ModuleList(stages)
        # Index k holds the downsampling before stage k (identity for the first and last).
        self.downsamples = nn.ModuleList(
            [nn.Identity(), *(Downsample(c) for c in channels[:-1]), nn.Identity()]
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = self.conv_in(x)  # [N, c0, H, W]
        for down, stage in zip(self.downsamples, self.blocks):
            x, _ = stage(down(x), cond)
        return x  # [N, c_last, H / 2**(n-1), W / 2**(n-1)]


class DiamondRewardEnd(nn.Module):
    """DIAMOND's reward/termination model (see the module docstring).

    Args:
        config: the sizes (:class:`RewardEndConfig`; a dict of its fields is accepted).
    """

    def __init__(self, config: RewardEndConfig) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = RewardEndConfig(**config)
        self.config = config
        self.encoder = RewardEndEncoder(
            2 * config.img_channels,
            config.cond_channels,
            list(config.depths),
            list(config.channels),
            list(config.attn_depths),
        )
        self.act_emb = nn.Embedding(config.num_actions, config.cond_channels)
        self.lstm = nn.LSTM(
            config.channels[-1] * config.feature_size**2, config.lstm_dim, batch_first=True
        )
        self.head = nn.Sequential(
            nn.Linear(config.lstm_dim, config.lstm_dim),
            nn.SiLU(),
            nn.Linear(config.lstm_dim, 3 + 2, bias=False),
        )
        init_lstm(self.lstm)

    def _check(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> None:
        cfg = self.config
        want = (cfg.img_channels, cfg.img_size, cfg.img_size)
        if obs.ndim != 5 or tuple(obs.shape[2:]) != want:
            raise ValueError(
                f"obs must be [B, T, {cfg.img_channels}, {cfg.img_size}, {cfg.img_size}] in "
                f"[-1, 1]; got shape {tuple(obs.shape)}"
            )
        if next_obs.shape != obs.shape:
            raise ValueError(
                f"next_obs must have obs's shape {tuple(obs.shape)}; got {tuple(next_obs.shape)}"
            )
        if act.shape != obs.shape[:2] or act.dtype.is_floating_point or act.dtype == torch.bool:
            raise ValueError(
                f"act must be integer action indices [B, T] = {tuple(obs.shape[:2])}; got "
                f"shape {tuple(act.shape)} dtype {act.dtype}"
            )
        if act.numel() and (int(act.min()) < 0 or int(act.max()) >= cfg.num_actions):
            raise ValueError(
                f"act must be in [0, {cfg.num_actions}); got values in "
                f"[{int(act.min())}, {int(act.max())}]"
            )

    def encode(self, obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
        """The encoder's feature maps ``[B, T, C, h, w]`` of each step's transition, before
        the LSTM (``obs``/``next_obs`` ``[B, T, c, H, W]`` in ``[-1, 1]``, ``act`` long
        ``[B, T]``)."""
        self._check(obs, act, next_obs)
        b = obs.shape[0]
        x = rearrange(torch.cat((obs, next_obs), dim=2), "b t c h w -> (b t) c h w")
        cond = self.act_emb(rearrange(act, "b t -> (b t)"))  # [B*T, cond]
        x = self.encoder(x, cond)  # [B*T, C, h, w]
        return rearrange(x, "(b t) c h w -> b t c h w", b=b)

    def forward(
        self, obs: Tensor, act: Tensor, next_obs: Tensor, state: LSTMState | None = None
    ) -> RewardEndOutput:
        """Logits of ``T`` transitions from LSTM ``state`` (``None``: zeros).

        Args:
            obs: frames before the actions ``[B, T, c, H, W]`` in ``[-1, 1]``.
            act: actions taken at ``obs`` (long ``[B, T]``).
            next_obs: frames after the actions, same shape as ``obs``.
            state: ``(h, c)``, each ``[1, B, lstm_dim]``, or ``None``.
        """
        b = obs.shape[0]
        if state is not None:
            want = (1, b, self.config.lstm_dim)
            if len(state) != 2 or any(tuple(s.shape) != want for s in state):
                raise ValueError(
                    f"state must be (h, c), each [1, B, lstm_dim] = {want}; got "
                    f"{[tuple(s.shape) for s in state]}"
                )
            state = (state[0], state[1])
        x = rearrange(self.encode(obs, act, next_obs), "b t c h w -> b t (c h w)")
        x, state = self.lstm(x, state)  # [B, T, lstm]
        logits = self.head(x)  # [B, T, 5]
        return RewardEndOutput(logits[..., :3], logits[..., 3:], state)

    @staticmethod
    def sample(
        logits_rew: Tensor, logits_end: Tensor, generator: torch.Generator | None = None
    ) -> RewardEndSample:
        """Draw reward (class - 1) and done from the logits' categoricals with ``generator``
        (on the logits' device; ``None``: torch's global generator)."""
        if logits_rew.shape[-1] != 3 or logits_end.shape[-1] != 2:
            raise ValueError(
                f"logits_rew must end in 3 classes and logits_end in 2; got shapes "
                f"{tuple(logits_rew.shape)} and {tuple(logits_end.shape)}"
            )

        def draw(logits: Tensor) -> Tensor:
            probs = rearrange(logits.float().softmax(-1), "... k -> (...) k")
            idx = torch.multinomial(probs, 1, generator=generator)  # [N, 1]
            return idx.reshape(logits.shape[:-1])

        return RewardEndSample(draw(logits_rew).float() - 1.0, draw(logits_end).bool())

    def loss(
        self,
        obs: Tensor,
        act: Tensor,
        next_obs: Tensor,
        reward: Tensor,
        done: Tensor,
        mask: Tensor | None = None,
    ) -> RewardEndLoss:
        """DIAMOND's training loss on ``T`` transitions from a zero state: cross-entropy of the
        reward's sign class (``sign(r) + 1``) plus cross-entropy of the end flag.

        Args:
            obs, act, next_obs: as in :meth:`forward`.
            reward: rewards ``[B, T]`` (any real values; only their sign is learnt).
            done: terminations ``[B, T]`` (bool or 0/1).
            mask: ``[B, T]`` bool, the steps to count (``None``: all), e.g. to skip padding.
        """
        shape = obs.shape[:2]
        for name, t in (("reward", reward), ("done", done)) + (
            (("mask", mask),) if mask is not None else ()
        ):
            if t.shape != shape:
                raise ValueError(f"{name} must be [B, T] = {tuple(shape)}; got {tuple(t.shape)}")
        if mask is not None and not mask.any():
            raise ValueError("mask selects no step; the loss would be the mean of nothing")
        logits_rew, logits_end, _ = self(obs, act, next_obs)
        target_rew = reward.sign().long() + 1
        target_end = done.long()
        if mask is not None:
            logits_rew, logits_end = logits_rew[mask], logits_end[mask]
            target_rew, target_end = target_rew[mask], target_end[mask]
        loss_rew = F.cross_entropy(logits_rew.reshape(-1, 3), target_rew.reshape(-1))
        loss_end = F.cross_entropy(logits_end.reshape(-1, 2), target_end.reshape(-1))
        return RewardEndLoss(loss_rew + loss_end, loss_rew, loss_end)
