"""latent_change_scale: latent frame changes brought to the size of pixel changes."""

import pytest
import torch

from wmkit.core import Latents
from wmkit.core.testing import ToyTokenizer
from wmkit.diffusion_world import latent_change_scale


class _Scaled(ToyTokenizer):
    """Identity-pooling continuous tokenizer whose latents are ``gain`` times the pixels."""

    def __init__(self, gain: float) -> None:
        super().__init__(patch=1, kind="continuous")
        self.gain = gain

    def encode(self, video):
        return Latents(values=super().encode(video).values * self.gain, kind="continuous")


def test_scale_undoes_the_latents_gain():
    torch.manual_seed(0)
    videos = [torch.rand(2, 4, 3, 8, 8) * 2 - 1 for _ in range(3)]
    assert latent_change_scale(_Scaled(1.0), videos) == 1.0
    assert latent_change_scale(_Scaled(4.0), videos) == 0.25
    # a lossy tokenizer (4x average pooling) keeps less of each change: a scale above 1
    assert latent_change_scale(ToyTokenizer(patch=4, kind="continuous"), videos) > 1.5


def test_bad_inputs_fail_clearly():
    video = torch.zeros(1, 3, 3, 8, 8)
    with pytest.raises(ValueError, match="continuous tokenizer"):
        latent_change_scale(ToyTokenizer(kind="discrete"), [video])
    with pytest.raises(ValueError, match=">= 2 frames"):
        latent_change_scale(_Scaled(1.0), [video[:, :1]])
    with pytest.raises(ValueError, match="no videos"):
        latent_change_scale(_Scaled(1.0), [])
    with pytest.raises(ValueError, match="never change"):
        latent_change_scale(_Scaled(1.0), [video])
