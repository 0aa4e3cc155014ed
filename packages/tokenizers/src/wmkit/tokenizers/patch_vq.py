"""`PatchVQTokenizer`: vector quantization of raw pixel patches, with a k-means codebook.

Every non-overlapping ``patch × patch`` patch of a frame becomes the id of its nearest code
patch (Euclidean distance in pixel space); decoding looks the code patches up and tiles them.
This is classical vector quantization of image blocks (Gray, "Vector quantization", IEEE ASSP
Magazine 1984): a VQ-VAE whose encoder and decoder are the identity, so there is no network,
encoding is one nearest-neighbour search and the codebook is fitted by k-means (Lloyd's
algorithm, :meth:`PatchVQTokenizer.fit`) or by minibatch gradient steps on the k-means
objective (:class:`~wmkit.tokenizers.patch_vq_lit.PatchVQModule`, ``wmkit tokenizer fit``).

Where it is the right tool: frames made of a small set of sprites that sit on the patch grid,
i.e. tile-based games. Crafter renders a 9 × 9 grid of tiles; recorded at 36 × 36 pixels a
tile is exactly 4 × 4 pixels, so with ``patch=4`` a token *is* a tile, a step of the player is
a shift of the token grid by one, and the held-out reconstruction error is small. A world
model trained on these tokens is then measured on its dynamics, not on its tokenizer. For
natural video (no grid, no small set of patches) use :class:`~wmkit.tokenizers.VidTokTokenizer`.

Per-frame and strictly causal (temporal compression 1); ids are ``long [B, T, H/p, W/p]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from wmkit.core import Latents, PretrainedMixin, check_video

__all__ = ["PatchVQOutput", "PatchVQTokenizer"]


@dataclass
class PatchVQOutput:
    """Training pass of a :class:`PatchVQTokenizer`.

    Attributes:
        reconstruction: ``[B, T, C, H, W]``, the frames rebuilt from their codes (gradients
            reach the codebook).
        ids: ``long [B, T, h, w]`` code of every patch.
        loss: k-means objective, the mean squared distance of each patch to its code.
    """

    reconstruction: Tensor
    ids: Tensor
    loss: Tensor


class PatchVQTokenizer(nn.Module, PretrainedMixin):
    """Per-frame discrete tokenizer: nearest code patch of every ``patch × patch`` patch.

    The codebook starts empty: call :meth:`fit` on training frames (k-means), or train it
    with ``PatchVQModule`` (which runs :meth:`fit` on its first batch). ``encode`` and
    ``decode`` refuse an unfitted tokenizer.

    Args:
        patch: patch side in pixels (the spatial compression).
        codebook_size: number of codes (the vocabulary).
        channels: image channels.
    """

    def __init__(self, patch: int = 4, codebook_size: int = 256, channels: int = 3) -> None:
        super().__init__()
        if patch < 1 or codebook_size < 2 or channels < 1:
            raise ValueError(
                f"patch and channels must be >= 1 and codebook_size >= 2; got patch={patch}, "
                f"codebook_size={codebook_size}, channels={channels}"
            )
        self.patch, self.codebook_size, self.channels = patch, codebook_size, channels
        self.codebook = nn.Parameter(torch.zeros(codebook_size, channels * patch * patch))
        self.register_buffer("fitted", torch.tensor(False))

    # ------------------------------------------------------------------ Tokenizer protocol
    @property
    def kind(self) -> str:
        return "discrete"

    @property
    def vocab_size(self) -> int:
        return self.codebook_size

    @property
    def latent_channels(self) -> None:
        return None

    @property
    def spatial_compression(self) -> int:
        return self.patch

    @property
    def temporal_compression(self) -> int:
        return 1

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        if height % self.patch or width % self.patch:
            raise ValueError(
                f"video height and width must be multiples of patch={self.patch}; got "
                f"{height}x{width}"
            )
        return (num_frames, height // self.patch, width // self.patch)

    # ------------------------------------------------------------------ patches
    def patches(self, video: Tensor, name: str = "video") -> Tensor:
        """``[B, T, C, H, W]`` in [-1, 1] → patches ``[B, T, h, w, C·p·p]``."""
        check_video(video, name=name, channels=self.channels)
        self.tokens_shape(*video.shape[1:2], *video.shape[3:])
        p = self.patch
        return rearrange(video, "b t c (h p) (w q) -> b t h w (c p q)", p=p, q=p)

    def _tile(self, codes: Tensor) -> Tensor:
        """Code patches ``[B, T, h, w, C·p·p]`` → frames ``[B, T, C, H, W]``."""
        p = self.patch
        return rearrange(codes, "b t h w (c p q) -> b t c (h p) (w q)", p=p, q=p)

    @torch.no_grad()
    def _nearest(self, x: Tensor, chunk: int = 65536) -> Tensor:
        """Nearest code of each row of ``x [N, D]`` → ``long [N]``."""
        codebook = self.codebook.detach().to(x.dtype)
        sq = codebook.square().sum(-1)  # [K]
        out = [
            (sq - 2 * part @ codebook.T).argmin(-1)  # ||c||² - 2 x·c: same argmin as ||x - c||²
            for part in x.split(chunk)
        ]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)

    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError(
                "PatchVQTokenizer has no codebook yet: call tokenizer.fit(frames) or train it "
                "with PatchVQModule (wmkit tokenizer fit -c .../patch_vq_*.yaml)"
            )

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def fit(
        self, video: Tensor, iterations: int = 20, max_patches: int = 200_000, seed: int = 0
    ) -> float:
        """Fit the codebook to the patches of ``video`` ``[B, T, C, H, W]`` by k-means.

        k-means++ seeding (Arthur & Vassilvitskii 2007), then Lloyd iterations; a code left
        without patches is re-seeded on the worst-fitted patch. At most ``max_patches``
        patches (drawn at random) are used. Returns the final mean squared error per pixel
        value of the fitted patches against their codes (their reconstruction MSE).
        """
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1; got {iterations}")
        x = self.patches(video).reshape(-1, self.codebook.shape[1]).float()  # [N, D]
        gen = torch.Generator(device="cpu").manual_seed(seed)
        if x.shape[0] > max_patches:
            x = x[torch.randperm(x.shape[0], generator=gen)[:max_patches].to(x.device)]
        k = self.codebook_size
        codes = _kmeans_pp(x, k, gen)
        for _ in range(iterations):
            self.codebook.data.copy_(codes)
            ids = self._nearest(x)
            dist = (x - codes[ids]).square().sum(-1)  # [N]
            count = torch.bincount(ids, minlength=k).to(x.dtype)
            sums = torch.zeros_like(codes).index_add_(0, ids, x)
            used = count > 0
            codes[used] = sums[used] / count[used, None]
            empty = (~used).nonzero().flatten()
            if empty.numel():  # re-seed empty codes on the worst-fitted patches
                worst = dist.topk(min(empty.numel(), x.shape[0])).indices
                codes[empty[: worst.numel()]] = x[worst]
        self.codebook.data.copy_(codes)
        self.fitted.fill_(True)
        return float((x - codes[self._nearest(x)]).square().mean())

    def forward(self, video: Tensor) -> PatchVQOutput:
        """Training pass: nearest codes, reconstruction from the codebook, k-means loss."""
        self._check_fitted()
        x = self.patches(video)  # [B, T, h, w, D]
        ids = self._nearest(x.reshape(-1, x.shape[-1])).reshape(x.shape[:4])
        codes = self.codebook[ids]  # [B, T, h, w, D]
        loss = (codes - x.detach()).square().mean()
        return PatchVQOutput(reconstruction=self._tile(codes), ids=ids, loss=loss)

    @torch.no_grad()
    def encode(self, video: Tensor) -> Latents:
        """``[B, T, C, H, W]`` in [-1, 1] → ids ``long [B, T, H/p, W/p]``."""
        self._check_fitted()
        x = self.patches(video)
        ids = self._nearest(x.reshape(-1, x.shape[-1])).reshape(x.shape[:4])
        return Latents(values=ids, kind="discrete")

    @torch.no_grad()
    def decode(self, latents: Latents | Tensor) -> Tensor:
        """Ids ``long [B, T, h, w]`` (or their ``Latents``) → frames ``[B, T, C, H, W]``."""
        self._check_fitted()
        ids = latents.values if isinstance(latents, Latents) else latents
        if not isinstance(ids, Tensor) or ids.is_floating_point() or ids.ndim != 4:
            got = f"{ids.dtype}{tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids)
            raise ValueError(f"token ids must be long [B, T, h, w]; got {got}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.codebook_size):
            raise ValueError(
                f"token ids must be in [0, {self.codebook_size}); got "
                f"[{int(ids.min())}, {int(ids.max())}]"
            )
        return self._tile(self.codebook[ids]).clamp(-1, 1)


def _kmeans_pp(x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeds: ``k`` rows of ``x [N, D]``, each drawn with probability proportional
    to its squared distance to the seeds so far (rows repeat when ``N < k``)."""
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot fit a codebook on zero patches")
    first = int(torch.randint(n, (1,), generator=gen))
    seeds = [first]
    dist = (x - x[first]).square().sum(-1)  # [N]
    for _ in range(k - 1):
        total = dist.sum()
        if total <= 0:  # fewer distinct patches than codes: repeat random rows
            idx = int(torch.randint(n, (1,), generator=gen))
        else:
            idx = int(torch.multinomial(dist.cpu() / total.cpu(), 1, generator=gen))
        seeds.append(idx)
        dist = torch.minimum(dist, (x - x[idx]).square().sum(-1))
    return x[torch.tensor(seeds, device=x.device)].clone()
