"""A diffusers VAE as a per-frame ``wmkit.core.Tokenizer``: the latent space a pretrained video
diffusion network was trained in.

A causalized pretrained network (:func:`~wmkit.diffusion_world.causalize.causalize`) only
keeps what it learned when it sees the latents it was trained on. :class:`DiffusersVAETokenizer`
wraps the VAE of its pipeline and encodes every frame on its own (the world model steps one
frame at a time, so ``temporal_compression`` is 1):

- ``AutoencoderKL`` (Stable Diffusion's image VAE; ModelScope text-to-video's and
  DynamiCrafter's, which Vid2World builds on, encode frames this way too): latents
  ``(mode - shift_factor) * scaling_factor``;
- ``AutoencoderKLWan`` (Wan 2.1): each frame is encoded as a one-frame video, Wan's causal VAE
  treating it as a first frame (an image); latents normalised per channel with the config's
  ``latents_mean`` / ``latents_std``, as Wan's pipelines do.

Encoding takes the posterior's mode (deterministic). The VAE is a submodule, so
``save_pretrained`` writes its weights into ``model.safetensors`` and its diffusers config into
``vae_kwargs``: the saved tokenizer no longer needs the pipeline's directory. Where we differ:
Wan's own pipelines encode a clip with 4x temporal compression after the first frame; per-frame
latents are the first-frame (image) latents of that space, which is what Wan's image-to-video
conditioning feeds it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from wmkit.core import Latents, PretrainedMixin, check_video

__all__ = ["VAE_CLASSES", "DiffusersVAETokenizer"]

VAE_CLASSES: tuple[str, ...] = ("AutoencoderKL", "AutoencoderKLWan")


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
    """Per-frame continuous tokenizer around a diffusers VAE (see the module docstring).

    Args:
        vae_class: ``"AutoencoderKL"`` or ``"AutoencoderKLWan"``.
        pretrained_vae: local diffusers directory of a pretrained VAE (a pipeline's ``vae/``);
            its class must be ``vae_class``. ``save_pretrained`` records its config in
            ``vae_kwargs`` instead (the weights are in ``model.safetensors``).
        vae_kwargs: the VAE's config when built without ``pretrained_vae`` (random weights:
            tests, or a VAE to train elsewhere).
    """

    kind: Literal["continuous"] = "continuous"
    vocab_size = None
    temporal_compression = 1

    def __init__(
        self,
        vae_class: str = "AutoencoderKL",
        pretrained_vae: str | None = None,
        vae_kwargs: dict[str, Any] | None = None,
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
        config = self.vae.config
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
        else:
            self._channels = int(config.latent_channels)
            self._compression = 2 ** (len(config.block_out_channels) - 1)
            mean = [float(config.shift_factor or 0.0)] * self._channels
            std = [1.0 / float(config.scaling_factor)] * self._channels
        self.register_buffer("latent_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("latent_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    @property
    def latent_channels(self) -> int:
        return self._channels

    @property
    def spatial_compression(self) -> int:
        return self._compression

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        s = self._compression
        if height % s or width % s:
            raise ValueError(f"frames of {height}x{width} do not divide by the VAE's {s}x")
        return (num_frames, self._channels, height // s, width // s)

    def train(self, mode: bool = True) -> DiffusersVAETokenizer:
        super().train(mode)
        self.vae.eval()  # frozen: no dropout, whatever the caller's mode
        return self

    @torch.no_grad()
    def encode(self, video: Tensor) -> Latents:
        """``float [B, T, C, H, W]`` in [-1, 1] → ``Latents(values=[B, T, c, H/s, W/s])``."""
        check_video(video, "video")
        b, t, _, h, w = video.shape
        self.tokens_shape(t, h, w)  # checks the size
        frames = rearrange(video, "b t c h w -> (b t) c h w").to(self.latent_mean.device)
        frames = frames.to(next(self.vae.parameters()).dtype)
        if self._wan_vae:  # one-frame videos: [(B T), C, 1, H, W]
            z = self.vae.encode(frames[:, :, None]).latent_dist.mode()[:, :, 0]
        else:
            z = self.vae.encode(frames).latent_dist.mode()
        z = (z.float() - self.latent_mean) / self.latent_std
        return Latents(values=rearrange(z, "(b t) c h w -> b t c h w", b=b), kind="continuous")

    @torch.no_grad()
    def decode(self, latents: Latents | Tensor) -> Tensor:
        """Latents ``[B, T, c, h, w]`` (or their ``Latents``) → video ``[B, T, C, H, W]``."""
        z = latents.values if isinstance(latents, Latents) else latents
        if not isinstance(z, Tensor) or z.ndim != 5 or z.shape[2] != self._channels:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"latents must be [B, T, {self._channels}, h, w]; got {shape}")
        b = z.shape[0]
        z = rearrange(z, "b t c h w -> (b t) c h w").float() * self.latent_std + self.latent_mean
        z = z.to(next(self.vae.parameters()).dtype)
        if self._wan_vae:
            frames = self.vae.decode(z[:, :, None]).sample[:, :, 0]
        else:
            frames = self.vae.decode(z).sample
        return rearrange(frames.float().clamp(-1, 1), "(b t) c h w -> b t c h w", b=b)
