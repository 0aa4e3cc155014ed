"""``RewardHead``: a tiny CNN predicting a transition's reward from two frames and the action.

The ``WorldModel`` protocol returns a reward with every ``step``. Reward ``r_t`` follows
action ``a_t`` taken at frame ``t`` (DESIGN.md §3), so it is read from the transition
``(x_t, a_t, x_{t+1})``: the frame before, the action and the generated frame after.

Why a separate network rather than a head on the diffusion network's features (DIAMOND
also keeps its reward/termination model apart from the denoiser):

- while sampling, the diffusion network sees the newest frame *noisy* (pure noise at the
  one-step setting); the reward head reads the finished frame instead;
- it works unchanged for every backbone (native DiT, causalized SVD UNet) and on pixels or
  a tokenizer's latents, and its loss does not touch the diffusion network's weights;
- it costs one tiny convolutional pass per generated frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wmkit.core import ActionSpec
from wmkit.diffusion_world.action_embedding import ActionEmbedding

__all__ = ["RewardHead"]


class RewardHead(nn.Module):
    """``(previous frame [N, c, h, w], new frame [N, c, h, w], action [N, ...])`` → reward ``[N]``.

    Two stride-2 convolutions over the two frames stacked on channels, pooled to a 4x4 grid
    (keeps *where* things are, which rewards often depend on), flattened, plus the action's
    embedding, then a two-layer MLP.

    Args:
        action_spec: the actions.
        channels: channels of one frame (pixels or latents).
        hidden: convolution and MLP width.
    """

    def __init__(self, action_spec: ActionSpec, channels: int, hidden: int = 32) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"reward_hidden must be >= 1; got {hidden}")
        self.convs = nn.Sequential(
            nn.Conv2d(2 * channels, hidden, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(16 * hidden, hidden),
        )
        self.action = ActionEmbedding(action_spec, hidden)
        self.mlp = nn.Sequential(
            nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1)
        )

    def forward(self, previous: Tensor, new: Tensor, action: Tensor) -> Tensor:
        h = self.convs(torch.cat([previous, new], dim=1))  # [N, hidden]
        return self.mlp(h + self.action(action)).squeeze(-1)  # [N]
