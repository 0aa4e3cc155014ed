"""An inverse-dynamics model (IDM) to score generated video by its actions (MineWorld §5).

A small CNN sees two consecutive frames and predicts the action taken between them, one
categorical head per action token (``ActionSpec.to_tokens``: discrete → 1 token,
multi-discrete → one per component, continuous → ``bins`` bins per component). Trained on
real recorded data (:func:`train_idm`), it is then run on frame pairs *generated* by a world
model from known actions: the more often it recovers those actions (:func:`idm_accuracy`), the
more the generated motion is the motion the actions should cause. MineWorld trains a larger
IDM (VPT's) on Minecraft; ours is deliberately tiny and dataset-specific, so compare
accuracies only between models evaluated with the same IDM, next to the IDM's accuracy on real
frames (the ceiling) and on copy-last-frame video (the floor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from wmkit.core.action_spec import ActionSpec
from wmkit.core.pretrained import PretrainedMixin
from wmkit.core.video import check_video

__all__ = ["InverseDynamicsModel", "idm_accuracy", "train_idm"]


class InverseDynamicsModel(nn.Module, PretrainedMixin):
    """Frame pair → action-token logits.

    Args:
        action_spec: the actions to predict.
        channels: image channels.
        hidden: width of the CNN.
        depth: number of stride-2 conv blocks.
    """

    def __init__(
        self, action_spec: ActionSpec, channels: int = 3, hidden: int = 32, depth: int = 3
    ) -> None:
        super().__init__()
        if depth < 1 or hidden < 1:
            raise ValueError(f"depth and hidden must be >= 1; got {depth}, {hidden}")
        self.action_spec = action_spec
        self.channels = channels
        layers: list[nn.Module] = []
        cin = 3 * channels  # frame, next frame, their difference
        for _ in range(depth):
            layers += [
                nn.Conv2d(cin, hidden, 3, stride=2, padding=1),
                nn.GroupNorm(1, hidden),
                nn.SiLU(),
            ]
            cin = hidden
        self.body = nn.Sequential(*layers)
        self.vocab = list(action_spec.token_vocab_sizes)
        self.head = nn.Linear(hidden, sum(self.vocab))

    def forward(self, frames: Tensor, next_frames: Tensor) -> list[Tensor]:
        """``[N, C, H, W]`` pairs → one logits tensor ``[N, vocab_k]`` per action token."""
        x = torch.cat([frames, next_frames, next_frames - frames], dim=1)  # [N, 3C, H, W]
        h = self.body(x).mean(dim=(2, 3))  # [N, D]
        return list(self.head(h).split(self.vocab, dim=-1))

    def loss(self, frames: Tensor, next_frames: Tensor, actions: Tensor) -> Tensor:
        """Cross-entropy over tokens for actions ``[N, *action_shape]``."""
        targets = self.action_spec.to_tokens(actions)  # [N, K]
        logits = self(frames, next_frames)
        return sum(F.cross_entropy(lg, targets[:, k]) for k, lg in enumerate(logits)) / len(logits)

    @torch.no_grad()
    def predict_tokens(self, video: Tensor) -> Tensor:
        """Video ``[B, T, C, H, W]`` → predicted action tokens ``[B, T - 1, K]``."""
        check_video(video, channels=self.channels)
        b = video.shape[0]
        a = rearrange(video[:, :-1], "b t c h w -> (b t) c h w")
        n = rearrange(video[:, 1:], "b t c h w -> (b t) c h w")
        ids = torch.stack([lg.argmax(-1) for lg in self(a, n)], dim=-1)  # [(B T), K]
        return rearrange(ids, "(b t) k -> b t k", b=b)


def _pairs(frames: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Clips ``[B, T, ...]`` and actions ``[B, T, ...]`` → all transitions (t → t+1, action t)."""
    a = rearrange(frames[:, :-1], "b t c h w -> (b t) c h w")
    n = rearrange(frames[:, 1:], "b t c h w -> (b t) c h w")
    return a, n, actions[:, :-1].reshape(-1, *actions.shape[2:])


def train_idm(
    idm: InverseDynamicsModel,
    frames: Tensor,
    actions: Tensor,
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Fit ``idm`` on real clips ``frames [N, T, C, H, W]`` with ``actions [N, T, ...]``
    (action ``t`` between frames ``t`` and ``t + 1``); returns the loss per step."""
    check_video(frames, "frames", channels=idm.channels)
    idm.action_spec.validate(actions)
    a, n, act = _pairs(frames, actions)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(idm.parameters(), lr=lr)
    idm.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, a.shape[0], (min(batch_size, a.shape[0]),), generator=g)
        loss = idm.loss(a[idx], n[idx], act[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    idm.eval()
    return losses


@torch.no_grad()
def idm_accuracy(idm: InverseDynamicsModel, video: Tensor, actions: Tensor) -> Tensor:
    """Per-transition accuracy ``[B, T - 1]`` (mean over action tokens) of the IDM's actions
    for ``video [B, T, C, H, W]`` against ``actions [B, T - 1, ...]`` (action ``t`` between
    frames ``t`` and ``t + 1``)."""
    if actions.shape[:2] != (video.shape[0], video.shape[1] - 1):
        raise ValueError(
            f"actions must be [B, T - 1, ...] = [{video.shape[0]}, {video.shape[1] - 1}, ...] "
            f"for video of shape {tuple(video.shape)}; got {tuple(actions.shape)}"
        )
    pred = idm.predict_tokens(video)  # [B, T-1, K]
    true = idm.action_spec.to_tokens(actions)  # [B, T-1, K]
    return (pred == true).float().mean(-1)
