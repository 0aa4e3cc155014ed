"""DIAMOND's actor-critic (Alonso et al., 2024, section 3 and appendix C) as a wmkit policy.

DIAMOND trains its agent entirely in imagination: a small convolutional encoder over one
``64x64`` RGB frame (no frame stacking; memory comes from an ``LSTMCell``), then a linear
actor head (logits over the game's minimal action set) and a linear critic head (the state
value). The encoder is a 3x3 convolution, then per stage a pre-norm residual block
(GroupNorm, SiLU, 3x3 convolution, plus a 1x1 skip when the width changes) and, where
``down`` says so, a 2x2 max-pool.

- :class:`DiamondActorCritic`: the network. Its parameter names equal the released
  checkpoints' ``actor_critic.*`` keys with that prefix stripped, so a released state dict
  loads strictly (:func:`actor_critic_from_released` reads the sizes from its shapes). It is
  a :class:`~wmkit.core.PretrainedMixin`, so ``wmkit convert diamond`` writes it as
  ``DIR/policy``.
- :class:`DiamondPolicy`: the network behind wmkit-agents' :class:`~wmkit.agents.Policy`
  protocol, carrying the LSTM state from call to call until ``reset()`` and sampling from
  the actor's categorical with its own seeded generator (or taking the arg-max).

Where we differ: the training loss (lambda-returns in imagination) is not here; this module
runs released or converted agents.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from wmkit.core import PretrainedMixin
from wmkit.core.nn_init import init_lstm

__all__ = [
    "ActorCriticOutput",
    "DiamondActorCritic",
    "DiamondPolicy",
    "actor_critic_from_released",
]

LSTMState = tuple[Tensor, Tensor]
_PREFIX = "actor_critic."


class ActorCriticOutput(NamedTuple):
    """``logits [B, A]``, ``value [B]`` and the ``LSTMCell`` ``state`` ``(h, c)``, each
    ``[B, lstm_dim]``."""

    logits: Tensor
    value: Tensor
    state: LSTMState


class _GroupNorm(nn.Module):
    """Affine GroupNorm with DIAMOND's ``max(1, C // 32)`` groups and eps 1e-5; the inner
    module is ``norm`` (the released key names)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(max(1, channels // 32), channels, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class _SmallResBlock(nn.Module):
    """``skip(x) + conv3x3(silu(groupnorm(x)))``; ``skip`` is a 1x1 conv when widths differ."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.f = nn.Sequential(
            _GroupNorm(in_channels),
            nn.SiLU(),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        )
        self.skip_projection = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.skip_projection(x) + self.f(x)


class _Encoder(nn.Module):
    """The frame encoder; ``encoder`` is one ``nn.Sequential`` as in the released keys
    (``encoder.encoder.{0, 1, 3, 5, 7}`` with all four stages pooling)."""

    def __init__(self, img_channels: int, channels: list[int], down: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(img_channels, channels[0], kernel_size=3, padding=1)]
        for i, c in enumerate(channels):
            layers.append(_SmallResBlock(channels[max(0, i - 1)], c))
            if down[i]:
                layers.append(nn.MaxPool2d(2))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


class DiamondActorCritic(nn.Module, PretrainedMixin):
    """DIAMOND's actor-critic network (see the module docstring); defaults are the released
    Atari 100k agent's sizes.

    Args:
        num_actions: discrete actions (the game's minimal action set: 9 for MsPacman).
        lstm_dim: ``LSTMCell`` width.
        img_channels: channels of a frame.
        img_size: frame height and width in pixels.
        channels: channels per encoder stage.
        down: per stage, whether a 2x2 max-pool follows it (0/1).
    """

    def __init__(
        self,
        num_actions: int,
        lstm_dim: int = 512,
        img_channels: int = 3,
        img_size: int = 64,
        channels: list[int] | None = None,
        down: list[int] | None = None,
    ) -> None:
        super().__init__()
        channels = [32, 32, 64, 64] if channels is None else [int(c) for c in channels]
        down = [1, 1, 1, 1] if down is None else [int(d) for d in down]
        for name, value in (("num_actions", num_actions), ("lstm_dim", lstm_dim),
                            ("img_channels", img_channels), ("img_size", img_size)):  # fmt: skip
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if not channels or len(down) != len(channels) or min(channels) < 1:
            raise ValueError(
                f"channels must be positive widths and down one 0/1 per stage; got "
                f"channels={channels}, down={down}"
            )
        if any(d not in (0, 1) for d in down) or img_size % 2 ** sum(down):
            raise ValueError(
                f"down must hold 0/1 and img_size be divisible by 2**sum(down) = "
                f"{2 ** sum(down)}; got down={down}, img_size={img_size}"
            )
        self.num_actions = int(num_actions)
        self.lstm_dim = int(lstm_dim)
        self.img_channels = int(img_channels)
        self.img_size = int(img_size)
        self.encoder = _Encoder(self.img_channels, channels, down)
        side = self.img_size // 2 ** sum(down)
        self.lstm = nn.LSTMCell(channels[-1] * side * side, self.lstm_dim)
        self.critic_linear = nn.Linear(self.lstm_dim, 1)
        self.actor_linear = nn.Linear(self.lstm_dim, self.num_actions)
        for head in (self.critic_linear, self.actor_linear):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        init_lstm(self.lstm)

    def _check_obs(self, obs: Tensor) -> None:
        want = (self.img_channels, self.img_size, self.img_size)
        if obs.ndim != 4 or tuple(obs.shape[1:]) != want or not obs.dtype.is_floating_point:
            raise ValueError(
                f"obs must be float [B, {want[0]}, {want[1]}, {want[2]}] in [-1, 1]; got shape "
                f"{tuple(obs.shape)} dtype {obs.dtype}"
            )

    def encode(self, obs: Tensor) -> Tensor:
        """The encoder's feature map ``[B, C, h, w]`` of frames ``obs [B, c, H, W]`` in [-1, 1]."""
        self._check_obs(obs)
        return self.encoder(obs)

    def zero_state(self, batch_size: int) -> LSTMState:
        """The state at an episode's start: zeros ``[batch_size, lstm_dim]`` twice."""
        h = self.lstm.weight_hh.new_zeros(batch_size, self.lstm_dim)
        return h, h.clone()

    def predict(self, obs: Tensor, state: LSTMState | None = None) -> ActorCriticOutput:
        """One step: action logits, value and the next state from frames ``obs [B, c, H, W]``
        in ``[-1, 1]`` and ``state`` (``(h, c)``, each ``[B, lstm_dim]``; ``None``: zeros)."""
        x = self.encode(obs).flatten(start_dim=1)  # [B, C*h*w]
        if state is None:
            state = self.zero_state(obs.shape[0])
        elif len(state) != 2 or any(tuple(s.shape) != (obs.shape[0], self.lstm_dim) for s in state):
            raise ValueError(
                f"state must be (h, c), each [B, lstm_dim] = ({obs.shape[0]}, {self.lstm_dim}); "
                f"got {[tuple(s.shape) for s in state]}"
            )
        h, c = self.lstm(x, (state[0], state[1]))  # [B, lstm] each
        return ActorCriticOutput(self.actor_linear(h), self.critic_linear(h).squeeze(-1), (h, c))

    def forward(self, obs: Tensor, state: LSTMState | None = None) -> ActorCriticOutput:
        return self.predict(obs, state)

    def as_policy(
        self, greedy: bool = False, seed: int = 0, device: str | torch.device | None = None
    ) -> DiamondPolicy:
        """This network as a :class:`DiamondPolicy` (what ``wmkit play --policy DIR`` uses)."""
        return DiamondPolicy(self, greedy=greedy, seed=seed, device=device)


def actor_critic_from_released(state: dict[str, Tensor], img_size: int = 64) -> DiamondActorCritic:
    """A :class:`DiamondActorCritic` built from, and holding, a released ``actor_critic.*``
    state dict (the prefix stripped, or kept: it is removed if present).

    The sizes come from the tensor shapes; whether the last stage pools is read from the
    ``LSTMCell``'s input width given ``img_size`` (a max-pool has no weights).

    Raises:
        ValueError: a required key is missing, or the shapes fit no configuration.
    """
    state = {k.removeprefix(_PREFIX): v for k, v in state.items()}
    required = (
        "encoder.encoder.0.weight",
        "lstm.weight_hh",
        "lstm.weight_ih",
        "actor_linear.weight",
    )
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"not a DIAMOND actor-critic state dict: missing {missing}")
    blocks: dict[int, int] = {}
    for key, value in state.items():
        m = re.fullmatch(r"encoder\.encoder\.(\d+)\.f\.2\.weight", key)
        if m:
            blocks[int(m.group(1))] = int(value.shape[0])
    if not blocks:
        raise ValueError("not a DIAMOND actor-critic state dict: no encoder.encoder.<i>.f.2.weight")
    idx = sorted(blocks)
    channels = [blocks[i] for i in idx]
    down = [int(b - a == 2) for a, b in itertools.pairwise(idx)]  # a pool sits between two blocks
    lstm_in = int(state["lstm.weight_ih"].shape[1])
    ratio = lstm_in / channels[-1]
    side = math.isqrt(round(ratio))
    total = math.log2(img_size / side) if side else -1.0
    last = total - sum(down)
    if side * side * channels[-1] != lstm_in or last not in (0.0, 1.0):
        raise ValueError(
            f"lstm.weight_ih input width {lstm_in} fits no pooling of {img_size}x{img_size} "
            f"frames with {channels[-1]} channels after down={down} (+ the last stage's)"
        )
    model = DiamondActorCritic(
        num_actions=int(state["actor_linear.weight"].shape[0]),
        lstm_dim=int(state["lstm.weight_hh"].shape[1]),
        img_channels=int(state["encoder.encoder.0.weight"].shape[1]),
        img_size=img_size,
        channels=channels,
        down=[*down, int(last)],
    )
    model.load_state_dict(state, strict=True)
    return model


class DiamondPolicy:
    """A :class:`DiamondActorCritic` as a wmkit-agents :class:`~wmkit.agents.Policy`.

    ``policy(obs)`` takes ``uint8 [B, H, W, C]`` frames (mapped to ``x / 255 * 2 - 1``, DIAMOND's
    input) or a float tensor ``[B, C, H, W]`` already in ``[-1, 1]``, steps the LSTM from the
    state the previous call left (zeros after ``reset()`` or at the start) and returns the
    actions as int64 ``[B]``: drawn from ``Categorical(logits)`` with the policy's own
    generator, or the arg-max when ``greedy``. ``last`` holds the last step's
    :class:`ActorCriticOutput` (logits, value, state) for callers that show them.

    Args:
        network: the actor-critic.
        greedy: take the most likely action instead of sampling.
        seed: seed of the sampling generator (re-seeded by nothing but construction).
        device: where to run (default: the network's device).
    """

    def __init__(
        self,
        network: DiamondActorCritic,
        greedy: bool = False,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(network, DiamondActorCritic):
            raise TypeError(f"network must be a DiamondActorCritic; got {type(network).__name__}")
        self.device = torch.device(device) if device is not None else network.lstm.weight_hh.device
        self.network = network.to(self.device).eval()
        self.greedy = bool(greedy)
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.state: LSTMState | None = None
        self.last: ActorCriticOutput | None = None

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        greedy: bool = False,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> DiamondPolicy:
        """The policy of a directory written by :meth:`save_pretrained` (or ``wmkit convert
        diamond``'s ``DIR/policy``)."""
        return cls(
            DiamondActorCritic.from_pretrained(path), greedy=greedy, seed=seed, device=device
        )

    def save_pretrained(self, path: str) -> None:
        """Write the network as ``config.json`` + ``model.safetensors`` under ``path``."""
        self.network.save_pretrained(path)

    @property
    def num_actions(self) -> int:
        return self.network.num_actions

    def reset(self, done: np.ndarray | Tensor | None = None) -> None:
        """Back to the zero LSTM state: every environment's (``done=None``), or only those
        where ``done`` (bool ``[B]``) is set, as DIAMOND zeroes the state of the imagined
        environments that ended while the others run on (e.g. after a ``VecEnv`` step)."""
        if done is None or self.state is None:
            self.state = None
            self.last = None
            return
        mask = torch.as_tensor(np.asarray(done), dtype=torch.bool, device=self.device)
        if mask.shape != (self.state[0].shape[0],):
            raise ValueError(
                f"done must be bool [B] = [{self.state[0].shape[0]}]; got shape {tuple(mask.shape)}"
            )
        keep = (~mask).float()[:, None]  # [B, 1]
        self.state = (self.state[0] * keep, self.state[1] * keep)

    def _to_input(self, obs: np.ndarray | Tensor) -> Tensor:
        net = self.network
        if isinstance(obs, Tensor):
            if not obs.dtype.is_floating_point:
                raise ValueError(
                    f"a tensor obs must be float [B, C, H, W] in [-1, 1]; got dtype {obs.dtype}"
                )
            return obs.to(self.device, torch.float32)
        obs = np.asarray(obs)
        want = (net.img_size, net.img_size, net.img_channels)
        if obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[1:] != want:
            raise ValueError(
                f"obs must be uint8 [B, {want[0]}, {want[1]}, {want[2]}] frames (DIAMOND's "
                f"preprocessed observations); got shape {obs.shape} dtype {obs.dtype}"
            )
        x = torch.from_numpy(np.ascontiguousarray(obs)).to(self.device)
        return x.permute(0, 3, 1, 2).float().div(255).mul(2).sub(1)  # [B, C, H, W]

    @torch.no_grad()
    def __call__(self, obs: np.ndarray | Tensor) -> np.ndarray:
        x = self._to_input(obs)
        if self.state is not None and self.state[0].shape[0] != x.shape[0]:
            raise ValueError(
                f"batch size changed from {self.state[0].shape[0]} to {x.shape[0]} without "
                "reset(); the LSTM state belongs to the previous episodes"
            )
        out = self.network.predict(x, self.state)
        self.state, self.last = out.state, out
        if self.greedy:
            action = out.logits.argmax(dim=-1)
        else:
            probs = out.logits.float().softmax(dim=-1)
            action = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        return action.cpu().numpy().astype(np.int64)
