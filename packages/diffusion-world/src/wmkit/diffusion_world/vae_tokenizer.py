"""A diffusers VAE as a ``wmkit.core.Tokenizer``: the latent space a pretrained video diffusion
network was trained in.

A causalized pretrained network (:func:`~wmkit.diffusion_world.causalize.causalize`) only
keeps what it learned when it sees the latents it was trained on. :class:`DiffusersVAETokenizer`
wraps the VAE of its pipeline:

- ``AutoencoderKL`` (Stable Diffusion's image VAE; ModelScope text-to-video's and
  DynamiCrafter's, which Vid2World builds on, encode frames this way too): every frame on its
  own, latents ``(mode - shift_factor) * scaling_factor``;
- ``AutoencoderKLWan`` (Wan 2.1 / 2.2's Wan-VAE, arXiv:2503.20314): by default the clip as a
  video, the way Wan's pipelines encode it: the causal 3D VAE encodes frame 0 alone and every later
  group of ``k = 4`` frames into one latent frame (``T = 1 + n·k`` frames → ``1 + n`` latents,
  ``temporal_compression`` ``k``); ``decode`` inverts it through diffusers' own
  ``vae.decode``. ``frame_wise=True`` encodes every frame as a one-frame video instead (Wan's
  VAE treating each as a first frame, an image: the first-frame latents that Wan's
  image-to-video conditioning uses; ``temporal_compression`` 1). Either way latents are
  normalised per channel with the config's ``latents_mean`` / ``latents_std``, as Wan's
  pipelines do.

``decode_next`` (:class:`wmkit.core.StreamingDecoder`) decodes a video latent step by latent
step: for Wan's video latents it drives the VAE's decoder with its causal feature cache one
latent frame at a time, as diffusers' ``AutoencoderKLWan._decode`` does, but on a copy of the
cache handed back as an immutable :class:`VAEStream` (diffusers keeps it in the module and
clears it after each call); per-frame latents need no stream.

Encoding takes the posterior's mode (deterministic). The VAE is a submodule, so
``save_pretrained`` writes its weights into ``model.safetensors`` and its diffusers config into
``vae_kwargs``: the saved tokenizer no longer needs the pipeline's directory. Tokenizers saved
before ``frame_wise`` existed encoded frame by frame; their ``config.json`` loads with
``frame_wise=True`` (:meth:`DiffusersVAETokenizer.upgrade_config`). Where we differ from Wan's
pipelines: video mode needs the VAE's 4x temporal compression (diffusers' encoder reads 4 frames
per latent step), and neither encoding nor decoding is spatially tiled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from wmkit.core import Latents, PretrainedMixin, check_video, streamed_frames

__all__ = ["VAE_CLASSES", "DiffusersVAETokenizer", "VAEStream"]

VAE_CLASSES: tuple[str, ...] = ("AutoencoderKL", "AutoencoderKLWan")

#: Frames per latent step of diffusers' ``AutoencoderKLWan`` encoder after the first frame.
WAN_TEMPORAL_COMPRESSION = 4


@dataclass(frozen=True)
class VAEStream:
    """What :meth:`DiffusersVAETokenizer.decode_next` carries between latent steps.

    Attributes:
        feat_cache: Wan video mode: the decoder's causal feature cache after the last step
            (one entry per causal convolution, as diffusers' ``_feat_map``: the last frames it
            saw, or diffusers' ``"Rep"`` marker, or ``None``); empty for per-frame latents.
            Never written to after the call that made it.
        latent_frames: latent frames decoded so far.
    """

    feat_cache: tuple[Tensor | str | None, ...]
    latent_frames: int


def _vae_class(name: str) -> type[nn.Module]:
    from diffusers import AutoencoderKL, AutoencoderKLWan

    classes = {"AutoencoderKL": AutoencoderKL, "AutoencoderKLWan": AutoencoderKLWan}
    if name not in classes:
        raise ValueError(f"vae_class must be one of {VAE_CLASSES}; got {name!r}")
    return classes[name]


def _load_vae(path: str | os.PathLike, expected: str | None) -> nn.Module:
    directory = Path(path)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"no diffusers VAE at {directory} (config.json missing; pretrained_vae must be a "
            "local directory written by the VAE's save_pretrained, e.g. a pipeline's vae/)"
        )
    if not list(directory.glob("diffusion_pytorch_model*.safetensors")):
        raise FileNotFoundError(
            f"no diffusion_pytorch_model*.safetensors in {directory} (only safetensors weights "
            "are loaded)"
        )
    name = json.loads(config_file.read_text()).get("_class_name")
    if expected is not None and name != expected:
        raise ValueError(f"{directory} holds a {name}; vae_class is {expected}")
    cls = _vae_class(name)
    return cls.from_pretrained(directory, local_files_only=True, use_safetensors=True)


class DiffusersVAETokenizer(nn.Module, PretrainedMixin):
    """Continuous tokenizer around a diffusers VAE (see the module docstring).

    Args:
        vae_class: ``"AutoencoderKL"`` or ``"AutoencoderKLWan"``.
        pretrained_vae: local diffusers directory of a pretrained VAE (a pipeline's ``vae/``);
            its class must be ``vae_class``. ``save_pretrained`` records its config in
            ``vae_kwargs`` instead (the weights are in ``model.safetensors``).
        vae_kwargs: the VAE's config when built without ``pretrained_vae`` (random weights:
            tests, or a VAE to train elsewhere).
        frame_wise: ``AutoencoderKLWan`` only: encode every frame alone as a one-frame video
            (``temporal_compression`` 1) instead of the clip as a video (``T = 1 + n·4``
            frames → ``1 + n`` latents). ``AutoencoderKL`` is an image VAE and always
            per-frame.
    """

    kind: Literal["continuous"] = "continuous"
    vocab_size = None

    def __init__(
        self,
        vae_class: str = "AutoencoderKL",
        pretrained_vae: str | None = None,
        vae_kwargs: dict[str, Any] | None = None,
        frame_wise: bool = False,
    ) -> None:
        super().__init__()
        cls = _vae_class(vae_class)
        if pretrained_vae is not None:
            self.vae = _load_vae(pretrained_vae, expected=vae_class)
            if self._hub_mixin_config is not None:  # saved by its config, not its directory
                config = {k: v for k, v in self.vae.config.items() if k[0] != "_"}
                self._hub_mixin_config = {
                    **self._hub_mixin_config, "pretrained_vae": None, "vae_kwargs": config,
                }  # fmt: skip
        else:
            self.vae = cls(**(vae_kwargs or {}))
        self.vae.eval().requires_grad_(False)
        self._wan_vae = vae_class == "AutoencoderKLWan"
        self._video = self._wan_vae and not frame_wise
        if self._video:
            _check_wan_video_vae(self.vae.config)
        mean, std = self._normalisation(self.vae.config)
        self.register_buffer("latent_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("latent_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def _normalisation(self, config: Any) -> tuple[list[float], list[float]]:
        """Set ``_channels`` / ``_compression``; → per-channel latent mean and std."""
        if self._wan_vae:
            z = int(config.z_dim)
            mean, std = list(config.latents_mean), list(config.latents_std)
            if len(mean) != z or len(std) != z:
                raise ValueError(
                    f"latents_mean and latents_std must have z_dim = {z} entries; got "
                    f"{len(mean)} and {len(std)}"
                )
            self._channels = z
            self._compression = int(self.vae.spatial_compression_ratio)
            return mean, std
        self._channels = int(config.latent_channels)
        self._compression = 2 ** (len(config.block_out_channels) - 1)
        mean = [float(config.shift_factor or 0.0)] * self._channels
        return mean, [1.0 / float(config.scaling_factor)] * self._channels

    @classmethod
    def upgrade_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Tokenizers saved before ``frame_wise`` existed encoded every frame alone."""
        return config if "frame_wise" in config else {**config, "frame_wise": True}

    @property
    def latent_channels(self) -> int:
        return self._channels

    @property
    def spatial_compression(self) -> int:
        return self._compression

    @property
    def temporal_compression(self) -> int:
        return WAN_TEMPORAL_COMPRESSION if self._video else 1

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        s, k = self._compression, self.temporal_compression
        if height % s or width % s:
            raise ValueError(f"frames of {height}x{width} do not divide by the VAE's {s}x")
        if num_frames < 1 or (num_frames - 1) % k:
            raise ValueError(
                f"video must have 1 + n·{k} frames (1, {1 + k}, {1 + 2 * k}, ...) for "
                f"AutoencoderKLWan's {k}x temporal compression (frame_wise=False); got "
                f"T={num_frames}"
            )
        return (1 + (num_frames - 1) // k, self._channels, height // s, width // s)

    def train(self, mode: bool = True) -> DiffusersVAETokenizer:
        super().train(mode)
        self.vae.eval()  # frozen: no dropout, whatever the caller's mode
        return self

    @property
    def _vae_dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode(self, video: Tensor) -> Latents:
        """``float [B, T, C, H, W]`` in [-1, 1] → ``Latents(values=[B, T', c, H/s, W/s])``
        (``T' = T`` per frame, ``1 + (T - 1) / 4`` for Wan video latents)."""
        check_video(video, "video")
        b, t, _, h, w = video.shape
        self.tokens_shape(t, h, w)  # checks the size
        video = video.to(self.latent_mean.device, self._vae_dtype)
        if self._video:  # one video: [B, C, T, H, W] → [B, c, T', h, w]
            z = self.vae.encode(rearrange(video, "b t c h w -> b c t h w")).latent_dist.mode()
            z = rearrange(z, "b c t h w -> b t c h w")
        else:
            frames = rearrange(video, "b t c h w -> (b t) c h w")
            if self._wan_vae:  # one-frame videos: [(B T), C, 1, H, W]
                z = self.vae.encode(frames[:, :, None]).latent_dist.mode()[:, :, 0]
            else:
                z = self.vae.encode(frames).latent_dist.mode()
            z = rearrange(z, "(b t) c h w -> b t c h w", b=b)
        z = (z.float() - self.latent_mean) / self.latent_std  # [B, T', c, h, w]
        return Latents(values=z, kind="continuous")

    def _raw_latents(self, latents: Latents | Tensor) -> Tensor:
        """Checked, de-normalised latents in the VAE's layout and dtype: ``[B, c, T', h, w]``."""
        z = latents.values if isinstance(latents, Latents) else latents
        if not isinstance(z, Tensor) or z.ndim != 5 or z.shape[2] != self._channels:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"latents must be [B, T, {self._channels}, h, w]; got {shape}")
        if z.shape[1] < 1:
            raise ValueError("latents must hold at least one latent frame; got 0")
        z = z.to(self.latent_mean.device).float() * self.latent_std + self.latent_mean
        return rearrange(z, "b t c h w -> b c t h w").to(self._vae_dtype)

    @torch.no_grad()
    def decode(self, latents: Latents | Tensor) -> Tensor:
        """Latents ``[B, T', c, h, w]`` (or their ``Latents``) → video ``[B, T, C, H, W]``
        (``T = T'`` per frame, ``1 + 4·(T' - 1)`` for Wan video latents)."""
        z = self._raw_latents(latents)  # [B, c, T', h, w]
        if self._video:
            frames = self.vae.decode(z).sample  # [B, C, T, H, W]
            return rearrange(frames.float().clamp(-1, 1), "b c t h w -> b t c h w")
        b = z.shape[0]
        z = rearrange(z, "b c t h w -> (b t) c h w")
        if self._wan_vae:
            frames = self.vae.decode(z[:, :, None]).sample[:, :, 0]
        else:
            frames = self.vae.decode(z).sample
        return rearrange(frames.float().clamp(-1, 1), "(b t) c h w -> b t c h w", b=b)

    @torch.no_grad()
    def decode_next(
        self, latents: Latents | Tensor, stream: VAEStream | None = None
    ) -> tuple[Tensor, VAEStream]:
        """Decode the next ``n >= 1`` latent frames ``[B, n, c, h, w]`` of a video after those
        ``stream`` has seen (``None``: they start it) → ``(frames [B, F, C, H, W] in [-1, 1],
        new stream)``, ``F = 1 + 4·(n - 1)`` when starting and ``4·n`` after for Wan video
        latents, ``n`` for per-frame latents (:class:`wmkit.core.StreamingDecoder`).

        Wan video latents go through the decoder one latent frame at a time with a copy of
        the stream's causal feature cache, as diffusers' ``AutoencoderKLWan._decode`` does
        for a whole clip; the steps concatenate to ``decode`` of all latents, and ``stream``
        itself is never changed, so it can be continued several ways.
        """
        if not self._video:
            if stream is not None:
                self._check_stream(stream, 0)
            frames = self.decode(latents)
            done = 0 if stream is None else stream.latent_frames
            return frames, VAEStream(feat_cache=(), latent_frames=done + frames.shape[1])
        from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

        z = self._raw_latents(latents)  # [B, c, n, h, w]
        convs = sum(isinstance(m, WanCausalConv3d) for m in self.vae.decoder.modules())
        if stream is not None:
            self._check_stream(stream, convs, z.shape[0])
        done = 0 if stream is None else stream.latent_frames
        cache = [None] * convs if stream is None else list(stream.feat_cache)
        out = self._wan_decoder_steps(z, cache, starts=stream is None)  # [B, C, F, H, W]
        frames = rearrange(out.float().clamp(-1, 1), "b c t h w -> b t c h w")
        expected = streamed_frames(z.shape[2], WAN_TEMPORAL_COMPRESSION, starts=stream is None)
        if frames.shape[1] != expected:
            raise RuntimeError(
                f"the Wan decoder returned {frames.shape[1]} frames for {z.shape[2]} latent "
                f"frames; expected {expected} (a diffusers version whose decoder differs?)"
            )
        return frames, VAEStream(feat_cache=tuple(cache), latent_frames=done + z.shape[2])

    def _wan_decoder_steps(self, z: Tensor, cache: list, starts: bool) -> Tensor:
        """Raw latents ``[B, c, n, h, w]`` → pixels ``[B, C, F, H, W]``, one latent frame per
        decoder call as in ``AutoencoderKLWan._decode``, updating ``cache`` (a copy) in place."""
        x = self.vae.post_quant_conv(z)  # a 1x1x1 conv: no cache
        steps = []
        for i in range(x.shape[2]):
            first = starts and i == 0  # the first latent decodes to frame 0 alone
            step = self.vae.decoder(
                x[:, :, i : i + 1], feat_cache=cache, feat_idx=[0], first_chunk=first
            )
            steps.append(step)  # [B, C', 1 (first) or 4, H, W]
        out = torch.cat(steps, dim=2)
        if self.vae.config.patch_size is not None:  # Wan 2.2: pixels come out in patches
            from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

            out = unpatchify(out, patch_size=self.vae.config.patch_size)
        return out

    def _check_stream(self, stream: Any, convs: int, batch: int | None = None) -> None:
        if not isinstance(stream, VAEStream):
            raise TypeError(
                f"stream must be None or the VAEStream a decode_next call returned; got "
                f"{type(stream).__name__}"
            )
        if len(stream.feat_cache) != convs:
            raise ValueError(
                f"stream holds {len(stream.feat_cache)} cached features but this tokenizer's "
                f"decoder needs {convs} ({'Wan video' if self._video else 'per-frame'} latents): "
                "it comes from another tokenizer or mode"
            )
        for cached in stream.feat_cache:
            if isinstance(cached, Tensor) and batch is not None and cached.shape[0] != batch:
                raise ValueError(
                    f"stream was made for batch size {cached.shape[0]}; latents have batch {batch}"
                )


def _check_wan_video_vae(config: Any) -> None:
    """Video mode needs 4x temporal compression: diffusers' encoder reads 4 frames per step."""
    levels = len(config.dim_mult) - 1
    arch = 2 ** sum(bool(d) for d in list(config.temperal_downsample)[:levels])
    stated = config.scale_factor_temporal
    if arch != WAN_TEMPORAL_COMPRESSION or stated not in (None, WAN_TEMPORAL_COMPRESSION):
        raise ValueError(
            "AutoencoderKLWan video latents (frame_wise=False) need the VAE's 4x temporal "
            f"compression (diffusers encodes 4 frames per latent step); this VAE's "
            f"temperal_downsample {list(config.temperal_downsample)} compresses {arch}x "
            f"(scale_factor_temporal {stated}): pass frame_wise=True for per-frame latents"
        )
