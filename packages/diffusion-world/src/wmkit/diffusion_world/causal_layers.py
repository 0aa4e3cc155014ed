"""Causal replacements for the temporal layers of diffusers video networks (Vid2World §3.1).

- :class:`CausalTemporalConv3d`: a temporal convolution that only looks back, with the
  weights of a pretrained centred kernel transferred by one of three rules
  (``TEMPORAL_CONV_RULES``);
- :class:`FrameGroupNorm`: GroupNorm whose statistics are taken per frame;
- :class:`CausalAttnProcessor`: a diffusers attention processor with a causal mask, for
  attention layers whose sequence axis is time;
- :class:`FramePositionTimesteps`: SVD's sinusoidal frame-position embedding, aware of the
  history cache (frames after a cached history keep their positions).

The temporal layers also serve the UNets' history cache
(:mod:`~wmkit.diffusion_world.temporal_cache`): inside its calls they keep or read the state
of the frames before the ones they run.

All three keep the parameter names of the layers they replace (``weight``, ``bias``,
``to_q`` ...), so a causalized network loads the same state dict as the original.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import Timesteps
from einops import rearrange
from torch import Tensor, nn

from wmkit.diffusion_world.temporal_cache import active_history

__all__ = [
    "TEMPORAL_CONV_RULES",
    "CausalAttnProcessor",
    "CausalTemporalConv3d",
    "FrameGroupNorm",
    "FramePositionTimesteps",
    "TemporalConvRule",
    "transfer_temporal_kernel",
]

TemporalConvRule = Literal["shift", "masked", "extrapolative"]
TEMPORAL_CONV_RULES: tuple[str, ...] = ("shift", "masked", "extrapolative")


def transfer_temporal_kernel(weight: Tensor, rule: TemporalConvRule) -> Tensor:
    """Map a centred temporal kernel to a causal one of the same size.

    ``weight`` is ``[..., k]`` over time offsets ``-m..m`` (``k = 2m + 1``); the result is
    ``[..., k]`` over offsets ``-(k - 1)..0``. Rules (Vid2World, arXiv:2505.14357, §3.1):

    - ``shift``: the same kernel moved ``m`` frames into the past; the output at ``t`` is
      the original output at ``t - m`` (a delay).
    - ``masked``: keep the weights of offsets ``-m..0`` at their offsets and drop the future
      ones (the future is treated as zero).
    - ``extrapolative``: replace each future frame by its linear extrapolation from the
      last two, ``x[t + j] ≈ x[t] + j (x[t] - x[t - 1])``, and fold its weight into the
      weights of offsets ``0`` and ``-1``: ``w'[0] = w[0] + Σ_j (1 + j) w[j]``,
      ``w'[-1] = w[-1] - Σ_j j w[j]``. The causal layer then equals the original exactly
      on sequences linear in time (Vid2World's Proposition 1 case), away from the borders
      where the original zero-pads. Where we differ: the paper derives the transfer as the
      least-squares optimum under a linear model of the future; with a window reaching
      one frame back, that optimum is this two-point extrapolation, which we use for any
      ``k``.
    """
    k = weight.shape[-1]
    if k % 2 != 1:
        raise ValueError(f"temporal kernel size must be odd (centred); got {k}")
    if rule not in TEMPORAL_CONV_RULES:
        raise ValueError(f"temporal_conv must be one of {TEMPORAL_CONV_RULES}; got {rule!r}")
    m = k // 2
    if rule == "shift":
        return weight.clone()
    out = torch.zeros_like(weight)
    # causal index i <-> offset i - (k - 1); original index j <-> offset j - m
    out[..., k - 1 - m :] = weight[..., : m + 1]  # offsets -m..0
    if rule == "extrapolative" and m > 0:
        future = weight[..., m + 1 :]  # offsets 1..m
        j = torch.arange(1, m + 1, dtype=weight.dtype, device=weight.device)
        out[..., k - 1] += (future * (1 + j)).sum(-1)
        out[..., k - 2] -= (future * j).sum(-1)
    return out


class CausalTemporalConv3d(nn.Conv3d):
    """``nn.Conv3d`` with a ``(k, kh, kw)`` kernel that sees frames ``t - k + 1 .. t`` only.

    Input ``[B, C, T, H, W]`` (as diffusers' temporal blocks lay it out); the past is
    zero-padded, space is padded as the original layer did. Build it from a pretrained
    layer with :meth:`from_conv`.
    """

    def forward(self, x: Tensor) -> Tensor:  # x: [B, C, T, H, W]
        k = self.kernel_size[0]
        session = active_history()
        past = None if session is None else session.past(self, x.shape[0])
        if past is None:
            x = F.pad(x, (0, 0, 0, 0, k - 1, 0))  # [B, C, T + k - 1, H, W]
        else:  # the frames after a cached history: its last k - 1 input frames come first
            x = torch.cat([past[0].to(x.dtype), x], dim=2)
        if session is not None:
            session.keep(self, x[:, :, x.shape[2] - (k - 1) :])  # [B, C, k - 1, H, W]
        return super().forward(x)  # [B, C', T, H, W]

    @classmethod
    def from_conv(cls, conv: nn.Conv3d, rule: TemporalConvRule) -> CausalTemporalConv3d:
        """Causal copy of a centred temporal convolution, weights moved by ``rule``."""
        k = conv.kernel_size[0]
        if conv.stride[0] != 1 or conv.dilation[0] != 1 or conv.padding[0] != k // 2:
            raise ValueError(
                "can only causalize temporal convolutions with stride 1, dilation 1 and "
                f"centred padding k // 2; got stride {conv.stride}, dilation {conv.dilation}, "
                f"padding {conv.padding}"
            )
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"only zero padding is supported; got {conv.padding_mode!r}")
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=(0, conv.padding[1], conv.padding[2]),
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        with torch.no_grad():
            w = rearrange(conv.weight, "o i k h w -> o i h w k")
            w = transfer_temporal_kernel(w, rule)
            new.weight.copy_(rearrange(w, "o i h w k -> o i k h w"))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        new.rule = rule
        return new


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics per frame.

    On ``[N, C, H, W]`` it is plain GroupNorm. On ``[B, C, T, H, W]`` (diffusers' temporal
    res blocks) the original averages over all frames, so the future leaks into every
    frame's normalisation; here each frame is normalised on its own. Pretrained weights
    are kept; the statistics change (a difference from the original network that
    fine-tuning absorbs; Vid2World does not discuss it because DynamiCrafter's temporal
    layers are attention only).
    """

    @classmethod
    def from_group_norm(cls, norm: nn.GroupNorm) -> FrameGroupNorm:
        new = cls(norm.num_groups, norm.num_channels, norm.eps, norm.affine)
        new = new.to(device=norm.weight.device if norm.affine else None)
        if norm.affine:
            with torch.no_grad():
                new.weight.copy_(norm.weight)
                new.bias.copy_(norm.bias)
        return new

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b = x.shape[0]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)


class CausalAttnProcessor:
    """Self-attention with a causal mask, for diffusers ``Attention`` layers over time.

    Mirrors diffusers' ``AttnProcessor2_0`` (``F.scaled_dot_product_attention``) for the
    self-attention case with ``is_causal=True``: position ``t`` attends to ``<= t``.
    """

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        **kwargs: object,
    ) -> Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(
                "CausalAttnProcessor serves temporal self-attention only; got "
                "encoder_hidden_states or attention_mask"
            )
        if hidden_states.ndim != 3:
            raise ValueError(f"expected [N, T, D] hidden states; got {tuple(hidden_states.shape)}")
        residual = hidden_states
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        heads = attn.heads
        q = rearrange(attn.to_q(hidden_states), "n t (h d) -> n h t d", h=heads)
        k = rearrange(attn.to_k(hidden_states), "n t (h d) -> n h t d", h=heads)
        v = rearrange(attn.to_v(hidden_states), "n t (h d) -> n h t d", h=heads)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        session = active_history()
        past = None if session is None else session.past(attn, k.shape[0])
        if past is None:
            if session is not None:
                session.keep(attn, k, v)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [N, h, T, d]
        else:  # the frames after a cached history attend to all of it and causally to theirs
            k = torch.cat([past[0].to(k.dtype), k], dim=2)  # [N, h, L + T, d]
            v = torch.cat([past[1].to(v.dtype), v], dim=2)
            session.keep(attn, k, v)
            t, length = q.shape[2], k.shape[2]
            mask = None
            if t > 1:
                mask = torch.ones(t, length, dtype=torch.bool, device=q.device)
                mask = mask.tril(diagonal=length - t)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [N, h, T, d]
        out = rearrange(out, "n h t d -> n t (h d)").to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class FramePositionTimesteps(Timesteps):
    """Diffusers' ``Timesteps`` as SVD's ``TransformerSpatioTemporalModel`` uses it: the
    sinusoidal embedding of frame positions ``0..T-1``. After a cached history of ``L``
    frames (:mod:`~wmkit.diffusion_world.temporal_cache`) the frames run are at positions
    ``L..L+T-1``, as in the full forward; elsewhere it is the original."""

    @classmethod
    def from_timesteps(cls, proj: Timesteps) -> FramePositionTimesteps:
        return cls(proj.num_channels, proj.flip_sin_to_cos, proj.downscale_freq_shift, proj.scale)

    def forward(self, timesteps: Tensor) -> Tensor:
        session = active_history()
        if session is not None and session.first_frame:
            timesteps = timesteps + session.first_frame
        return super().forward(timesteps)
