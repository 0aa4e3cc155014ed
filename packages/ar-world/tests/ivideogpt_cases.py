"""The iVideoGPT parity fixtures (``../shared/parity/ivideogpt``, made by running the original
thuml/iVideoGPT code with random weights; see that README) and helpers to load them."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer, released_action_dim
from wmkit.ar_world.llama import LlamaConfig
from wmkit.core import Latents
from wmkit.core.testing import needs_parity, parity_dir

PARITY = parity_dir("ivideogpt")
ACT_COND = ["bair-64-act-cond", "vp2-robosuite-64-act-cond"]
ACTION_FREE = ["oxe-64-act-free", "oxe-64-goal-cond"]
CASES = ACT_COND + ACTION_FREE
LOGITS_ATOL = 1e-4

needs_fixtures = needs_parity("ivideogpt")


def case_json(name: str) -> dict:
    return json.loads((PARITY / name / "case.json").read_text())


def io(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(PARITY / name / "io.safetensors"))


def layout(name: str) -> IVideoGPTLayout:
    c = case_json(name)
    return IVideoGPTLayout(
        context_frames=c["context_length"],
        context_grid=(16, 16),
        future_grid=(4, 4),
        context_vocab_size=c["num_vq_embeddings"],
        future_vocab_size=c["num_dyn_embeddings"],
    )


def transformer(name: str) -> IVideoGPTTransformer:
    folder = PARITY / name / "transformer"
    config = LlamaConfig.from_hf(json.loads((folder / "config.json").read_text()))
    state = load_file(str(folder / "model.safetensors"))
    model = IVideoGPTTransformer(config, released_action_dim(state))
    model.load_released(state)
    return model.eval()


def video(name: str) -> Tensor:
    """The case's frames in model order as wmkit video ``[1, T, 3, 64, 64]`` in [-1, 1]."""
    return io(name)["frames_uint8"].permute(0, 1, 4, 2, 3).float() / 127.5 - 1


class RecordedTokenizer(nn.Module):
    """Gives a parity case's recorded ids for its frames (the released tokenizer is another
    package's); ``decode`` keeps the future ids it is given and shades frames by them."""

    kind, latent_channels, spatial_compression, temporal_compression = "discrete", None, 4, 1

    def __init__(self, frames: Tensor, ids: Tensor, n_vq: int, n_dyn: int) -> None:
        super().__init__()
        self.frames, self.ids, self.vocab_size, self.future_vocab_size = frames, ids, n_vq, n_dyn
        self.decoded: list[Tensor] = []

    def tokens_shape(self, num_frames: int, height: int, width: int) -> tuple[int, ...]:
        return (num_frames, height // 4, width // 4)

    def encode(self, video: Tensor, context_frames: int | None = None) -> Latents:
        match = (video[:, :, None] == self.frames[:, None]).flatten(3).all(-1)  # [B, T, Tr]
        assert match.any(-1).all(), "frames the fixture has no ids for"
        return Latents(values=self.ids[0, match[0].float().argmax(-1)][None], kind="discrete")

    def decode(self, latents: Latents) -> Tensor:
        self.decoded.append(latents.future)
        shade = latents.future.float().mean((-1, -2)) / self.future_vocab_size * 2 - 1
        t0 = latents.values.shape[1]
        shade = torch.cat([torch.zeros(1, t0), shade], 1)  # [B, T0 + F]
        return shade[:, :, None, None, None].expand(-1, -1, 3, 64, 64)
