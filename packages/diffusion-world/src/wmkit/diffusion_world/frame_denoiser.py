"""``FrameDenoiser``: one causal video network and one objective, as a per-frame denoiser.

The split follows DIAMOND's ``Denoiser`` (Alonso et al. 2024): the denoiser owns the network,
the objective's input/output scaling and the training loss; samplers
(:mod:`~wmkit.diffusion_world.sampler`) only call :meth:`FrameDenoiser.denoise`.

Training (:meth:`FrameDenoiser.loss`) is Diffusion Forcing (Chen et al. 2024,
arXiv:2407.01392): every frame gets an independent noise level, the network is strictly causal
over time and the loss covers all frames. Each frame's condition is dropped to the "no action"
vector with probability ``action_dropout``, so one network learns the conditional and the
unconditional predictions that causal action guidance (Vid2World §3.2) combines.

``residual=True`` diffuses the *change* from the clean previous frame, ``y_t = x_t - x_{t-1}``,
and the network also sees ``x_{t-1}`` as extra input channels (the way DIAMOND and GameNGen
condition on clean past frames). With a zero-initialised network output an untrained model
predicts ``y = 0``: it starts as copy-last-frame. The base ``x_{t-1}`` is always the clean
previous frame, so frame ``t``'s output still depends on frames ``< t`` only, while the
network's own inputs keep their independent per-frame noise levels. The first frame of a clip
(or window) has no previous frame: its base is zeros, it is kept clean and gets no loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.diffusion_world.cuda_graphs import GraphedNetwork
from wmkit.diffusion_world.objectives import Objective
from wmkit.diffusion_world.sampler import Denoiser

__all__ = ["DiffusionLoss", "FrameDenoiser"]


@dataclass
class DiffusionLoss:
    """``loss`` (scalar), the per-frame noise levels used (``timesteps [B, T]``, the
    objective's levels; 0 for clean context frames) and scalars to log."""

    loss: Tensor
    timesteps: Tensor
    logs: dict[str, Tensor] = field(default_factory=dict)


class FrameDenoiser(nn.Module):
    """A causal video network and an :class:`~wmkit.diffusion_world.objectives.Objective`.

    Args:
        network: ``forward(x [B, T, c', h, w], timesteps [B, T], cond [B, T, cond_dim])`` →
            ``[B, T, c, h, w]``, strictly causal over time, with a ``cond_dim`` attribute
            (``c' = 2c`` with ``residual``). Networks with ``history_kv`` / ``forward_next``
            / ``append_kv`` get the history cache.
        objective: the diffusion objective.
        residual: diffuse frame changes, the previous clean frame as extra input channels.
        action_dropout: per-frame probability of dropping the condition in training.
        clean_history_prob: per-frame probability of a clean, loss-free context frame in
            training (``None``: the objective's default).
        history_cache: compute the history's part of the network once per generated frame.
        cuda_graphs: at inference on CUDA, replay the network's calls as CUDA graphs.
    """

    def __init__(
        self,
        network: nn.Module,
        objective: Objective,
        residual: bool = False,
        action_dropout: float = 0.1,
        clean_history_prob: float | None = None,
        history_cache: bool = True,
        cuda_graphs: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= action_dropout <= 1.0:
            raise ValueError(f"action_dropout must be in [0, 1]; got {action_dropout}")
        if clean_history_prob is None:
            clean_history_prob = objective.default_clean_history_prob
        if not 0.0 <= clean_history_prob < 1.0:
            raise ValueError(f"clean_history_prob must be in [0, 1); got {clean_history_prob}")
        self.network, self.objective, self.residual = network, objective, residual
        self.action_dropout, self.clean_history_prob = action_dropout, clean_history_prob
        self.history_cache = history_cache and hasattr(network, "history_kv")
        self.cuda_graphs = cuda_graphs
        self._graphed: dict[str, GraphedNetwork] = {}

    # ------------------------------------------------------------------ denoising
    def bases(self, x: Tensor) -> Tensor:
        """``residual``: what each frame of ``x [B, T, ...]`` is relative to: the previous clean
        frame (zeros for the first) → ``[B, T, ...]``."""
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)

    def forward(
        self, x: Tensor, levels: Tensor, cond: Tensor, base: Tensor | None = None
    ) -> Tensor:
        """The objective's prediction for noisy ``x [B, T, c, h, w]`` (frame changes with
        ``residual``, whose ``base [B, T, c, h, w]`` are the clean previous frames) at
        per-frame ``levels [B, T]`` under conditions ``cond [B, T, D]``."""
        net_x, net_levels = self.network_inputs(x, levels, base)
        out = self._call_network("forward", self.network, net_x, net_levels, cond)
        return self.objective.prediction(x, levels, out, self.residual)

    denoise = forward

    def network_inputs(
        self, x: Tensor, levels: Tensor, base: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """What the network sees of ``x`` at ``levels``: the objective's input scaling and
        level encoding, and ``residual``'s base channels."""
        x, net_levels = self.objective.network_inputs(x, levels)
        if not self.residual:
            return x, net_levels
        if base is None:
            raise ValueError("residual=True: the denoiser needs base= (the previous frames)")
        if base.shape != x.shape:
            raise ValueError(f"base must have x's shape {tuple(x.shape)}; got {tuple(base.shape)}")
        return torch.cat([x, base], dim=2), net_levels

    def prepare_history(
        self,
        history: Tensor,
        history_levels: Tensor,
        history_cond: Tensor,
        base: Tensor | None = None,
    ) -> Denoiser | None:
        """The denoiser of one new frame after ``history [B, L, c, h, w]`` (at
        ``history_levels [B, L]`` with ``history_cond [B, L, D]``; ``residual``: ``base
        [B, L + 1, ...]``, the new frame's last), the history's part of the network computed
        here once: ``denoise(x [B', 1, ...], levels [B', 1], cond [B', 1, D])`` equals
        ``forward`` on the whole window's last frame, ``B'`` a multiple of ``B`` (guidance).
        ``None`` when the cache is off or the network has none."""
        if not self.history_cache:
            return None
        kv = self.history_kv(history, history_levels, history_cond, base)
        return self.denoise_next(kv, None if base is None else base[:, history.shape[1] :])

    def history_kv(
        self, history: Tensor, levels: Tensor, cond: Tensor, base: Tensor | None
    ) -> Tensor:
        """The network's ``history_kv`` of ``history [B, L, ...]`` (``base``: at least ``L``
        frames, the first ``L`` used)."""
        hist_base = None if base is None else base[:, : history.shape[1]]
        net_x, net_levels = self.network_inputs(history, levels, hist_base)
        return self._call_network("history_kv", self.network.history_kv, net_x, net_levels, cond)

    def append_kv(
        self, entry: Tensor, levels: Tensor, cond: Tensor, kv: Tensor, base: Tensor | None
    ) -> Tensor:
        """``kv`` with the clean frame ``entry [B, 1, ...]`` appended (the network's
        ``append_kv``)."""
        net_x, net_levels = self.network_inputs(entry, levels, base)
        return self._call_network("append_kv", self.network.append_kv, net_x, net_levels, cond, kv)

    def denoise_next(self, kv: Tensor, new_base: Tensor | None) -> Denoiser:
        """The denoiser of one new frame after the history whose cache is ``kv``
        (``new_base [B, 1, ...]``: the new frame's base, ``residual`` only)."""

        def denoise_next(x: Tensor, levels: Tensor, cond: Tensor) -> Tensor:
            base = None
            if new_base is not None:
                base = new_base.repeat(x.shape[0] // new_base.shape[0], 1, 1, 1, 1)
            nx, nl = self.network_inputs(x, levels, base)
            out = self._call_network("forward_next", self.network.forward_next, nx, nl, cond, kv)
            return self.objective.prediction(x, levels, out, self.residual)

        return denoise_next

    def _call_network(self, name: str, fn: Callable[..., Tensor], *args: Tensor) -> Tensor:
        """``fn(*args)``; at inference with ``cuda_graphs``, through a CUDA graph per input
        signature (one :class:`GraphedNetwork` per network entry point ``name``)."""
        if not self.cuda_graphs or self.training:
            return fn(*args)
        graphed = self._graphed.get(name)
        if graphed is None:
            graphed = self._graphed[name] = GraphedNetwork(fn)
        return graphed(*args)

    def _apply(self, fn: Any, recurse: bool = True) -> FrameDenoiser:
        super()._apply(fn, recurse)
        self._graphed = {}  # captured graphs point at the old parameters
        return self

    # ------------------------------------------------------------------ training
    def loss(self, x: Tensor, cond: Tensor, null_cond: Tensor) -> DiffusionLoss:
        """Diffusion Forcing loss on clean frames ``x [B, T, c, h, w]`` with conditions
        ``cond [B, T, D]`` (in training, each dropped to ``null_cond [B, T, D]`` with
        probability ``action_dropout``)."""
        b, t = x.shape[:2]
        base = self.bases(x) if self.residual else None
        y = x - base if base is not None else x  # what is diffused
        clean = torch.zeros(b, t, dtype=torch.bool, device=x.device)  # context frames, no loss
        if self.clean_history_prob > 0:
            clean = torch.rand(b, t, device=x.device) < self.clean_history_prob
        if self.residual:
            clean[:, 0] = True
        levels = self.objective.training_levels((b, t), clean, x.device)
        noise = torch.randn_like(y)
        if self.training and self.action_dropout > 0:
            keep = torch.rand(b, t, device=x.device) >= self.action_dropout
            cond = torch.where(keep[..., None], cond, null_cond)
        noisy = self.objective.noised(y, noise, levels, clean)
        net_x, net_levels = self.network_inputs(noisy, levels, base)
        out = self.network(net_x, net_levels, cond)
        pred = self.objective.loss_prediction(noisy, levels, out, self.residual)
        target = self.objective.target(y, noise, noisy, levels)
        per_frame = F.mse_loss(pred.float(), target.float(), reduction="none").mean((2, 3, 4))
        weight = (~clean).float()
        return DiffusionLoss(
            loss=(per_frame * weight).sum() / weight.sum().clamp_min(1.0),
            timesteps=levels,
            logs={
                "mse_first_frame": per_frame[:, 0].mean(),
                "mse_last_frame": per_frame[:, -1].mean(),
            },
        )

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.network.set_gradient_checkpointing(enabled)
