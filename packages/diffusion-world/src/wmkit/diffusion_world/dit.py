"""A native spatio-temporal DiT with causal temporal attention (Diffusion Forcing backbone).

Each block is factorised (as in Latte / Genie's ST-transformer): spatial self-attention
within each frame, then **causal** temporal self-attention over frames at each patch
position, then an MLP; all three are modulated by adaLN-Zero (DiT, Peebles & Xie 2023)
from a **per-frame** conditioning vector (time embedding of that frame's noise level plus
its action embedding), so every frame carries its own noise level as Diffusion Forcing
(Chen et al., arXiv:2407.01392) requires. Output frame ``t`` depends on inputs, noise
levels and conditions of frames ``<= t`` only.

Frame positions are fixed sinusoids of the index inside the window (the window slides
during long rollouts); patch positions are learned.

**History cache.** Because temporal attention is causal and everything else acts within a
frame, the history's keys and values do not depend on the frame being denoised: sampling
computes them once per generated frame (:meth:`SpatioTemporalDiT.history_kv`) and runs
every denoising step on the new frame alone (:meth:`SpatioTemporalDiT.forward_next`),
instead of re-running the whole window at every step (what Diffusion Forcing's and
Vid2World's samplers do). A window that slides by one frame per generated frame changes every
frame's position (an index inside the window) and what the oldest frames see, so the cache is
then rebuilt for each new frame. A window that *grows* keeps both: :meth:`append_kv` adds a
generated frame's keys and values to the cache for the cost of one frame, which is how the
world model's ``carry_history`` runs between refreshes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["DIT_SIZES", "SpatioTemporalDiT"]

DIT_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 32, "depth": 2, "num_heads": 2},
    "small": {"hidden_size": 384, "depth": 12, "num_heads": 6},
    "base": {"hidden_size": 768, "depth": 12, "num_heads": 12},
    "large": {"hidden_size": 1024, "depth": 20, "num_heads": 16},
}


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, causal: bool) -> Tensor:  # x: [N, L, D]
        q, k, v = self.split_qkv(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v, is_causal=causal))

    def split_qkv(self, x: Tensor) -> Tensor:  # x: [N, L, D] -> [3, N, h, L, d]
        return rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.heads)

    def merge(self, out: Tensor) -> Tensor:  # out: [N, h, L, d] -> [N, L, D]
        return self.proj(rearrange(out, "n h l d -> n l (h d)"))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_s = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn_s = _Attention(dim, heads)
        self.norm_t = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn_t = _Attention(dim, heads)
        self.norm_m = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 9 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(
        self,
        x: Tensor,
        c: Tensor,
        past: Tensor | None = None,
        kv: Literal["keep", "only"] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``x [B, T, N, D]``, ``c [B, T, D]`` → ``(x, kv)``; ``kv="keep"`` also returns the
        temporal keys and values of these frames ``[2, B·N, h, T, d]`` (``None`` otherwise),
        ``kv="only"`` stops once they exist (``x`` is then returned unfinished). With ``past``
        (``[2, B0·N, h, L, d]``, the cached history of ``B0`` rows, ``B`` a multiple of it:
        guidance repeats the batch), ``x`` holds one new frame that attends to the history and
        to itself."""
        b, _, n, _ = x.shape
        mods = self.ada(c)[:, :, None].chunk(9, dim=-1)  # 9 x [B, T, 1, D]
        h = _modulate(self.norm_s(x), mods[0], mods[1])
        h = self.attn_s(rearrange(h, "b t n d -> (b t) n d"), causal=False)
        x = x + mods[2] * rearrange(h, "(b t) n d -> b t n d", b=b)
        h = _modulate(self.norm_t(x), mods[3], mods[4])
        q, k, v = self.attn_t.split_qkv(rearrange(h, "b t n d -> (b n) t d"))  # [B N, h, T, d]
        kept = torch.stack([k, v]) if kv else None
        if kv == "only":
            return x, kept
        if past is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            if q.shape[0] != past.shape[1]:  # guidance: both branches share the history
                past = past.repeat(1, q.shape[0] // past.shape[1], 1, 1, 1)  # [2, B N, h, L, d]
            keys = torch.cat([past[0], k], dim=2)  # the new frame sees every one of them
            values = torch.cat([past[1], v], dim=2)
            out = F.scaled_dot_product_attention(q, keys, values)
        h = self.attn_t.merge(out)  # [B N, T, D]
        x = x + mods[5] * rearrange(h, "(b n) t d -> b t n d", b=b, n=n)
        h = _modulate(self.norm_m(x), mods[6], mods[7])
        return x + mods[8] * self.mlp(h), kept


class SpatioTemporalDiT(nn.Module):
    """Causal spatio-temporal DiT over frames (pixels or latents).

    ``forward(x [B, T, C, H, W], timesteps [B, T], cond [B, T, cond_dim] | None)`` →
    ``[B, T, C, H, W]`` (the prediction named by the diffusion objective).

    Args:
        in_channels: channels of the frames (3 for pixels, the tokenizer's latent channels),
            plus any conditioning channels concatenated to them (e.g. the previous frame).
        image_size: frame height and width (square).
        patch_size: side of the square patches.
        hidden_size: token width.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width over ``hidden_size``.
        gradient_checkpointing: recompute blocks in the backward pass to save memory.
        out_channels: channels of the prediction (``None``: ``in_channels``).
    """

    #: its inference calls can be replayed as CUDA graphs (``cuda_graphs.py``)
    supports_cuda_graphs = True

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 16,
        patch_size: int = 2,
        hidden_size: int = 32,
        depth: int = 2,
        num_heads: int = 2,
        mlp_ratio: float = 4.0,
        gradient_checkpointing: bool = False,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(
                f"image_size {image_size} must be a multiple of patch_size {patch_size}"
            )
        if hidden_size % num_heads:
            raise ValueError(
                f"hidden_size {hidden_size} must be a multiple of num_heads {num_heads}"
            )
        self.in_channels, self.image_size, self.patch_size = in_channels, image_size, patch_size
        self.out_channels = in_channels if out_channels is None else out_channels
        self.cond_dim = hidden_size
        self.gradient_checkpointing = gradient_checkpointing
        num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Linear(in_channels * patch_size**2, hidden_size)
        self.pos_embed = nn.Parameter(torch.randn(1, 1, num_patches, hidden_size) * 0.02)
        self.frame_pos = Timesteps(hidden_size, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_proj = Timesteps(hidden_size, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(hidden_size, hidden_size)
        self.blocks = nn.ModuleList(_Block(hidden_size, num_heads, mlp_ratio) for _ in range(depth))
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        self.proj_out = nn.Linear(hidden_size, self.out_channels * patch_size**2)
        for layer in (self.ada_out[1], self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.gradient_checkpointing = enabled

    def forward(self, x: Tensor, timesteps: Tensor, cond: Tensor | None = None) -> Tensor:
        tokens, emb = self._embed(x, timesteps, cond)  # [B, T, N, D], [B, T, D]
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, emb, use_reentrant=False)[0]
            else:
                tokens = block(tokens, emb)[0]
        return self._head(tokens, emb)

    def history_kv(self, x: Tensor, timesteps: Tensor, cond: Tensor | None = None) -> Tensor:
        """The history's temporal keys and values in every block, ``[depth, 2, B·N, heads, T,
        head_dim]``, for :meth:`forward_next` (the module docstring's history cache). Inference
        only; ``x`` etc. as in ``forward``."""
        tokens, emb = self._embed(x, timesteps, cond)
        kvs = []
        for i, block in enumerate(self.blocks):
            tokens, kv = block(tokens, emb, kv="only" if i == len(self.blocks) - 1 else "keep")
            kvs.append(kv)
        return torch.stack(kvs)

    def append_kv(
        self, x: Tensor, timesteps: Tensor, cond: Tensor | None, history: Tensor
    ) -> Tensor:
        """``history`` (:meth:`history_kv` of ``T`` frames) with one more frame ``x [B, 1, C,
        H, W]`` appended: equals ``history_kv`` of all ``T + 1`` frames (tested) at the cost of
        one frame. Returns ``[depth, 2, B·N, heads, T + 1, head_dim]``."""
        self._check_history(x, history)
        rows = x.shape[0] * (self.image_size // self.patch_size) ** 2
        if history.shape[2] != rows:
            raise ValueError(
                f"history must hold the {x.shape[0]} rows of x (B·N = {rows}); got "
                f"{history.shape[2]}"
            )
        tokens, emb = self._embed(x, timesteps, cond, first_frame=history.shape[-2])
        kvs = []
        last = len(self.blocks) - 1
        for i, (block, past) in enumerate(zip(self.blocks, history, strict=True)):
            tokens, kv = block(tokens, emb, past=past, kv="only" if i == last else "keep")
            kvs.append(kv)
        return torch.cat([history, torch.stack(kvs)], dim=-2)

    def _check_history(self, x: Tensor, history: Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"x must be one new frame [B, 1, C, H, W]; got {tuple(x.shape)}")
        if history.ndim != 6 or history.shape[:2] != (len(self.blocks), 2):
            raise ValueError(
                f"history must be history_kv's [{len(self.blocks)}, 2, B·N, heads, T, head_dim];"
                f" got {tuple(history.shape)}"
            )

    def forward_next(
        self, x: Tensor, timesteps: Tensor, cond: Tensor | None, history: Tensor
    ) -> Tensor:
        """``forward`` of one new frame ``x [B, 1, C, H, W]`` after the frames whose
        :meth:`history_kv` is ``history`` (computed for ``B`` or a divisor of ``B`` rows, in
        the same order, repeated): equals ``forward(cat([past, x], 1), …)[:, -1:]`` (tested)
        at the cost of one frame. Returns ``[B, 1, C, H, W]``."""
        self._check_history(x, history)
        tokens, emb = self._embed(x, timesteps, cond, first_frame=history.shape[-2])
        for block, past in zip(self.blocks, history, strict=True):
            tokens = block(tokens, emb, past=past)[0]
        return self._head(tokens, emb)

    def _embed(
        self, x: Tensor, timesteps: Tensor, cond: Tensor | None, first_frame: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Checked inputs → patch tokens ``[B, T, N, D]`` (frame positions from
        ``first_frame``) and per-frame conditions ``[B, T, D]``."""
        b, t, c, h, w = x.shape
        if (c, h, w) != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"x must be [B, T, {self.in_channels}, {self.image_size}, {self.image_size}]; "
                f"got {tuple(x.shape)}"
            )
        if timesteps.shape != (b, t):
            raise ValueError(f"timesteps must be [B, T] = {(b, t)}; got {tuple(timesteps.shape)}")
        p = self.patch_size
        tokens = rearrange(x, "b t c (h p) (w q) -> b t (h w) (c p q)", p=p, q=p)
        tokens = self.patch_embed(tokens) + self.pos_embed  # [B, T, N, D]
        frame_idx = torch.arange(first_frame, first_frame + t, device=x.device)
        tokens = tokens + self.frame_pos(frame_idx).to(tokens.dtype)[None, :, None]
        emb = self.time_embed(self.time_proj(timesteps.reshape(-1)).to(tokens.dtype))
        emb = rearrange(emb, "(b t) d -> b t d", b=b)  # [B, T, D]
        if cond is not None:
            emb = emb + cond
        return tokens, emb

    def _head(self, tokens: Tensor, emb: Tensor) -> Tensor:
        """Final adaLN and projection, tokens ``[B, T, N, D]`` → frames ``[B, T, C, H, W]``."""
        p, side = self.patch_size, self.image_size // self.patch_size
        shift, scale = self.ada_out(emb)[:, :, None].chunk(2, dim=-1)  # [B, T, 1, D] each
        out = self.proj_out(_modulate(self.norm_out(tokens), shift, scale))  # [B, T, N, C p p]
        return rearrange(
            out, "b t (h w) (c p q) -> b t c (h p) (w q)", h=side, p=p, q=p, c=self.out_channels
        )
