"""Probes: how much of the true action do latent actions carry?

- ``fit_probe``: a linear or small MLP probe from latent actions to the true actions of
  labelled episodes, trained on some episodes and scored on others: accuracy for discrete
  actions (mean over components of multi-discrete ones), R² for continuous ones.
- ``nearest_neighbour_curve``: IGOR's predictiveness analysis (Chen et al. 2024, Fig. 6b), in
  our form: predict a held-out transition's true action from the true actions of its ``k``
  nearest neighbours in latent-action space (majority vote / mean), for growing ``k``.
  IGOR plots the error of the neighbours' actions; we report the same quantity as
  accuracy / R² so the curve reads like the probes (higher is better).
- ``probe_latent_actions``: both, on a trained model and an ``EpisodeSource``, with a
  random-latent baseline (the same probes on uniformly random latent actions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmkit.core import ActionSpec, LatentActionModel
from wmkit.core.data.source import EpisodeSource
from wmkit.latent_action.labelled_source import infer_episode

__all__ = [
    "ProbeReport",
    "ProbeResult",
    "collect_transitions",
    "fit_probe",
    "latent_features",
    "nearest_neighbour_curve",
    "plot_predictiveness",
    "probe_latent_actions",
]

ProbeKind = Literal["linear", "mlp"]


def latent_features(spec: ActionSpec, actions: Tensor) -> Tensor:
    """Actions ``[N, *action_shape]`` → float features ``[N, F]`` (``ActionSpec.features``)."""
    return spec.features(actions)


def _targets(spec: ActionSpec, actions: Tensor) -> Tensor:
    """Discrete: ids ``long [N, K]``; continuous: values in [-1, 1] ``[N, K]``."""
    if spec.kind == "continuous":
        return latent_features(spec, actions)
    return spec.to_tokens(actions)


def _score(spec: ActionSpec, pred: Tensor, target: Tensor) -> float:
    """Accuracy (mean over components) or R² (mean over components)."""
    if spec.is_discrete:
        return float((pred == target).float().mean())
    sse = (pred - target).pow(2).sum(0)
    sst = (target - target.mean(0)).pow(2).sum(0).clamp_min(1e-8)
    return float((1 - sse / sst).mean())


@dataclass
class ProbeResult:
    """A probe's scores: ``metric`` is ``"accuracy"`` or ``"r2"``; ``chance`` is the score of
    always predicting the training majority (accuracy) or mean (R² of 0 up to noise)."""

    kind: str
    metric: str
    train_score: float
    test_score: float
    chance: float


def fit_probe(
    train_features: Tensor,
    train_actions: Tensor,
    test_features: Tensor,
    test_actions: Tensor,
    action_spec: ActionSpec,
    kind: ProbeKind = "linear",
    hidden: int = 64,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> ProbeResult:
    """Fit a probe from features ``[N, F]`` to true actions ``[N, *action_shape]``.

    Full-batch AdamW on standardised features; cross-entropy per component for discrete
    actions, MSE on [-1, 1]-rescaled values for continuous ones.
    """
    if kind not in ("linear", "mlp"):
        raise ValueError(f"kind must be 'linear' or 'mlp'; got {kind!r}")
    for name, feats, acts in (
        ("train", train_features, train_actions),
        ("test", test_features, test_actions),
    ):
        if feats.ndim != 2 or len(feats) != len(acts) or len(feats) == 0:
            raise ValueError(
                f"{name}_features must be [N, F] with one row per action (N > 0); got "
                f"{tuple(feats.shape)} and {name}_actions {tuple(acts.shape)}"
            )
        action_spec.validate(acts, name=f"{name}_actions", batch_dims=1)
    gen = torch.Generator().manual_seed(seed)
    mean, std = train_features.mean(0), train_features.std(0).clamp_min(1e-3)
    xtr, xte = (train_features - mean) / std, (test_features - mean) / std
    ytr, yte = _targets(action_spec, train_actions), _targets(action_spec, test_actions)
    sizes = action_spec.token_vocab_sizes if action_spec.is_discrete else (1,) * ytr.shape[1]
    out_dim = sum(sizes)
    dim = xtr.shape[1]
    if kind == "linear":
        net: nn.Module = nn.Linear(dim, out_dim)
    else:
        net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
    with torch.no_grad():
        for p in net.parameters():
            bound = 1 / math.sqrt(p.shape[-1]) if p.ndim > 1 else 0.0
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)

    def predict(x: Tensor) -> tuple[Tensor, list[Tensor]]:
        out = net(x)
        parts = list(out.split(list(sizes), dim=1))
        if action_spec.is_discrete:
            return torch.stack([p.argmax(1) for p in parts], 1), parts
        return out, parts

    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        out, parts = predict(x)
        if action_spec.is_discrete:
            return sum(F.cross_entropy(p, y[:, k]) for k, p in enumerate(parts)) / len(parts)
        return F.mse_loss(out, y)

    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(xtr, ytr).backward()
            opt.step()
    with torch.no_grad():
        ptr, _ = predict(xtr)
        pte, _ = predict(xte)
    if action_spec.is_discrete:
        majority = torch.stack(
            [torch.bincount(ytr[:, k], minlength=n).argmax() for k, n in enumerate(sizes)]
        )
        chance = _score(action_spec, majority.expand_as(yte), yte)
    else:
        chance = _score(action_spec, ytr.mean(0).expand_as(yte), yte)
    metric = "accuracy" if action_spec.is_discrete else "r2"
    return ProbeResult(
        kind, metric, _score(action_spec, ptr, ytr), _score(action_spec, pte, yte), chance
    )


@torch.no_grad()
def nearest_neighbour_curve(
    train_features: Tensor,
    train_actions: Tensor,
    test_features: Tensor,
    test_actions: Tensor,
    action_spec: ActionSpec,
    ks: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
) -> dict[int, float]:
    """IGOR-style predictiveness: score of predicting each test action from its ``k``
    nearest training neighbours in feature space, for each ``k`` (capped at N train).

    Ties in distance (identical discrete latent actions) are broken by a fixed tiny jitter,
    so a code's neighbours are a deterministic sample of the transitions that share it.
    """
    ytr, yte = _targets(action_spec, train_actions), _targets(action_spec, test_actions)
    gen = torch.Generator().manual_seed(0)
    dist = torch.cdist(test_features.float(), train_features.float())  # [Nte, Ntr]
    dist = dist + 1e-6 * torch.rand(dist.shape, generator=gen)
    order = dist.argsort(dim=1)
    curve: dict[int, float] = {}
    for k in ks:
        k = min(int(k), len(ytr))
        neigh = ytr[order[:, :k]]  # [Nte, k, K]
        if action_spec.is_discrete:
            pred = torch.stack(
                [
                    F.one_hot(neigh[:, :, j], n).sum(1).argmax(1)
                    for j, n in enumerate(action_spec.token_vocab_sizes)
                ],
                1,
            )
        else:
            pred = neigh.mean(1)
        curve[k] = _score(action_spec, pred, yte)
    return curve


def plot_predictiveness(
    curves: dict[str, dict[int, float]], path: str, metric: str = "accuracy", title: str = ""
) -> None:
    """Plot ``{label: {k: score}}`` curves (log-x) to ``path`` (png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    for label, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k nearest neighbours in latent-action space")
    ax.set_ylabel(f"true-action {metric}")
    ax.set_title(title or "latent-action predictiveness (IGOR)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def collect_transitions(
    model: LatentActionModel, source: EpisodeSource, episodes: Sequence[int], device: str = "cpu"
) -> tuple[Tensor, Tensor]:
    """Latent actions and true actions of every transition of ``episodes``:
    ``([N, *latent_shape], [N, *action_shape])``, latent ``t`` paired with action ``t``."""
    if source.action_spec is None:
        raise ValueError("probing needs labelled episodes; the source has no action_spec")
    latents, actions = [], []
    for ep in episodes:
        lat = infer_episode(model, source, ep, device)  # [T - 1, ...]
        acts = source.read_steps(ep, 0, len(lat))["actions"]
        latents.append(torch.from_numpy(np.asarray(lat)))
        actions.append(torch.from_numpy(np.asarray(acts)))
    return torch.cat(latents), torch.cat(actions)


@dataclass
class ProbeReport:
    """Probe scores on held-out episodes: ``probes[name]`` for ``linear``/``mlp`` on the
    latent actions and ``random_linear``/``random_mlp`` on random latents; the nearest-
    neighbour ``curves``; code ``perplexity`` (discrete latents); sample counts."""

    metric: str
    probes: dict[str, ProbeResult]
    curves: dict[str, dict[int, float]]
    perplexity: float | None
    num_train: int
    num_test: int
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def probe_latent_actions(
    model: LatentActionModel,
    source: EpisodeSource,
    train_episodes: Sequence[int],
    test_episodes: Sequence[int],
    steps: int = 300,
    seed: int = 0,
    device: str = "cpu",
) -> ProbeReport:
    """Linear + MLP probes and the nearest-neighbour curve, with the random-latent baseline."""
    from wmkit.latent_action.quantizer import code_statistics

    spec = model.latent_action_spec
    real = source.action_spec
    if real is None:
        raise ValueError("probing needs labelled episodes; the source has no action_spec")
    ltr, atr = collect_transitions(model, source, train_episodes, device)
    lte, ate = collect_transitions(model, source, test_episodes, device)
    gen = torch.Generator().manual_seed(seed)
    rtr, rte = spec.sample((len(ltr),), generator=gen), spec.sample((len(lte),), generator=gen)
    probes: dict[str, ProbeResult] = {}
    curves: dict[str, dict[int, float]] = {}
    for prefix, (a, b) in {"": (ltr, lte), "random_": (rtr, rte)}.items():
        ftr, fte = latent_features(spec, a), latent_features(spec, b)
        for kind in ("linear", "mlp"):
            probes[prefix + kind] = fit_probe(
                ftr, atr, fte, ate, real, kind, steps=steps, seed=seed
            )
        label = "random latents" if prefix else "latent actions"
        curves[label] = nearest_neighbour_curve(ftr, atr, fte, ate, real)
    perplexity = None
    if spec.is_discrete:
        ids = spec.to_tokens(lte)
        perplexity = float(code_statistics(ids, max(spec.token_vocab_sizes))["perplexity"])
    metric = "accuracy" if real.is_discrete else "r2"
    return ProbeReport(metric, probes, curves, perplexity, len(ltr), len(lte))
