"""Conformance checks every wmkit package runs on each model it ships.

Each ``check_*`` function raises ``AssertionError`` with a message saying what broke, so they
work inside pytest and in plain scripts. The pytest mix-ins in ``wmkit.core.testing.suites``
call them; use the functions directly for anything unusual.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wmkit.core.protocols import LatentActionModel, Latents, Tokenizer, WorldModel
from wmkit.core.testing.asserts import assert_same, check_video_out
from wmkit.core.testing.world_model_steps import check_buffered, stepwise_frames

__all__ = [
    "assert_same",
    "check_causality",
    "check_determinism",
    "check_latent_action_model",
    "check_protocol",
    "check_rejects",
    "check_save_load",
    "check_tokenizer",
    "check_world_model",
]


def check_protocol(obj: Any, protocol: type) -> None:
    """``obj`` has every member of the runtime-checkable ``protocol``."""
    if not isinstance(obj, protocol):
        missing = [
            name for name in getattr(protocol, "__protocol_attrs__", ()) if not hasattr(obj, name)
        ]
        raise AssertionError(
            f"{type(obj).__name__} does not satisfy {protocol.__name__}; missing {missing}"
        )


def check_determinism(fn: Callable[[], Any], seed: int = 0, what: str = "outputs") -> Any:
    """Two calls of ``fn`` under the same ``torch.manual_seed`` give bit-identical outputs."""
    torch.manual_seed(seed)
    first = fn()
    torch.manual_seed(seed)
    second = fn()
    try:
        assert_same(first, second, what=what)
    except AssertionError as e:
        raise AssertionError(f"not deterministic under a fixed seed: {e}") from None
    return first


def check_causality(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    unaffected: Callable[[int], int] = lambda t: t,
    positions: Sequence[int] | None = None,
    perturb: Callable[[Tensor], Tensor] | None = None,
    atol: float = 1e-6,
    seed: int = 0,
    what: str = "input",
) -> None:
    """Strict temporal causality: changing ``x[:, t:]`` leaves ``fn(x)[:, :unaffected(t)]``
    unchanged (to ``atol``).

    ``x`` is ``[B, T, ...]``; ``fn`` returns ``[B, T', ...]``. ``unaffected(t)`` is how many
    leading outputs may not depend on inputs ``t, t+1, ...`` (``t`` for a per-frame model;
    ``1 + (t - 1) // c`` latents for a causal tokenizer with temporal compression ``c``).
    ``perturb`` makes a replacement for the changed inputs (default: random values of the
    same dtype and range). ``fn`` runs under ``seed`` each call, so stochastic models work.
    """
    num = x.shape[1]
    positions = list(range(1, num)) if positions is None else list(positions)
    gen = torch.Generator().manual_seed(seed + 1)

    def default_perturb(part: Tensor) -> Tensor:
        if part.is_floating_point():
            lo, hi = part.min(), part.max()
            if lo == hi:
                lo, hi = lo - 1, hi + 1
            return lo + (hi - lo) * torch.rand(part.shape, generator=gen).to(part)
        hi = int(part.max()) + 1
        return (part + torch.randint(1, max(hi, 2), part.shape, generator=gen)) % max(hi, 2)

    perturb = perturb or default_perturb
    torch.manual_seed(seed)
    base = fn(x)
    for t in positions:
        x2 = x.clone()
        x2[:, t:] = perturb(x[:, t:])
        torch.manual_seed(seed)
        out = fn(x2)
        keep = unaffected(t)
        if keep <= 0:
            continue
        a, b = base[:, :keep], out[:, :keep]
        if not torch.allclose(a.double(), b.double(), atol=atol, rtol=0):
            diff = (a.double() - b.double()).abs().max().item()
            raise AssertionError(
                f"not causal: changing {what} at positions >= {t} changed output positions "
                f"< {keep} by up to {diff:.3g} (allowed {atol:g})"
            )


def check_rejects(
    fn: Callable[[], Any],
    match: str | None = None,
    exc: tuple[type[Exception], ...] = (ValueError, TypeError),
) -> None:
    """``fn()`` raises a clear ``ValueError``/``TypeError`` (mentioning ``match``), not a deep
    crash or, worse, a silent result."""
    try:
        fn()
    except exc as e:
        if match is not None and match.lower() not in str(e).lower():
            raise AssertionError(
                f"bad input raised {type(e).__name__}({e}) which does not mention {match!r}"
            ) from None
        return
    except Exception as e:
        raise AssertionError(
            f"bad input raised {type(e).__name__}: {e} instead of a ValueError/TypeError "
            "at the public boundary"
        ) from None
    raise AssertionError("bad input was accepted silently; expected a ValueError/TypeError")


def check_save_load(
    model: torch.nn.Module,
    forward: Callable[[torch.nn.Module], Any] | None = None,
    directory: str | Path | None = None,
) -> torch.nn.Module:
    """``save_pretrained`` → ``from_pretrained`` gives bit-identical weights and outputs.

    Returns the reloaded model.
    """
    if not hasattr(model, "save_pretrained") or not hasattr(type(model), "from_pretrained"):
        raise AssertionError(f"{type(model).__name__} has no save_pretrained/from_pretrained")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(directory) if directory is not None else Path(tmp) / "model"
        model.save_pretrained(path)
        for name in ("config.json", "model.safetensors"):
            if not (path / name).is_file():
                raise AssertionError(f"save_pretrained wrote no {name}")
        loaded = type(model).from_pretrained(path)
    sd_a, sd_b = model.state_dict(), loaded.state_dict()
    assert_same(dict(sd_a), dict(sd_b), what="state dicts after save/load")
    if forward is not None:
        model_eval = copy.deepcopy(model).eval()
        torch.manual_seed(0)
        expected = forward(model_eval)
        torch.manual_seed(0)
        got = forward(loaded.eval())
        assert_same(expected, got, what="outputs after save/load")
    return loaded


# ------------------------------------------------------------------------------ models
@torch.no_grad()
def check_world_model(
    model: WorldModel,
    context_frames: Tensor,
    actions: Tensor,
    *,
    causal: bool = True,
    stochastic: bool = False,
    save_load: bool = True,
    atol: float = 1e-5,
) -> None:
    """Everything the ``WorldModel`` contract promises, on the given inputs.

    Protocol membership; ``rollout`` shapes, dtypes and range; determinism under a seed;
    ``rollout`` equal to ``reset`` + ``step`` (to ``atol``); causality in the actions (frame
    ``t`` of a rollout does not depend on actions after ``t``; for a model with ``k``-frame
    latent steps, ``frames_per_step = k``, the frames of latent steps before the one an action
    conditions stay bit-identical, and ``step`` buffers and serves as
    :mod:`wmkit.core.latent_steps` says); clear errors for actions of
    the wrong shape or dtype and for uint8 context frames; save/load round trip.
    """
    check_protocol(model, WorldModel)
    spec = model.action_spec
    b, _, c, h, w = context_frames.shape
    steps = actions.shape[1]
    out = check_determinism(lambda: model.rollout(context_frames, actions), what="rollout")
    check_video_out(out.frames, (b, steps, c, h, w), "rollout frames")
    for name in ("rewards", "dones"):
        value = getattr(out, name)
        if value is not None and tuple(value.shape) != (b, steps):
            raise AssertionError(
                f"rollout {name} has shape {tuple(value.shape)}; expected {(b, steps)}"
            )

    k = int(getattr(model, "frames_per_step", 1))
    if causal and steps > 1:

        def gen(acts: Tensor) -> Tensor:
            return model.rollout(context_frames, acts).frames

        def perturb(part: Tensor) -> Tensor:
            return spec.sample(part.shape[:2], generator=torch.Generator().manual_seed(7)).to(part)

        # action t conditions latent step t // k: the frames of the steps before stay exact
        check_causality(
            gen, actions, unaffected=lambda t: t // k * k, perturb=perturb,
            atol=1e-6 if k == 1 else 0.0, what="actions",
        )  # fmt: skip

    torch.manual_seed(0)
    rolled = model.rollout(context_frames, actions).frames
    torch.manual_seed(0)
    served, generated, lags = stepwise_frames(model, context_frames, actions, (b, c, h, w))
    if not stochastic:
        if k == 1:
            assert_same(rolled, served, atol=atol, what="rollout vs reset+step")
        else:
            check_buffered(rolled, served, generated, lags, context_frames, k, atol)

    bad_shape = torch.zeros((b, steps, *spec.action_shape, 2), dtype=spec.dtype)
    check_rejects(lambda: model.rollout(context_frames, bad_shape), match="actions")
    wrong_dtype = torch.float32 if spec.is_discrete else torch.long
    check_rejects(lambda: model.rollout(context_frames, actions.to(wrong_dtype)), match="actions")
    u8 = ((context_frames + 1) * 127.5).to(torch.uint8)
    check_rejects(lambda: model.rollout(u8, actions), match="context_frames")
    if save_load and hasattr(model, "save_pretrained"):
        check_save_load(
            model,  # type: ignore[arg-type]
            forward=lambda m: m.rollout(context_frames, actions).frames,  # type: ignore[operator]
        )


@torch.no_grad()
def check_tokenizer(
    tokenizer: Tokenizer, video: Tensor, *, causal: bool = True, save_load: bool = True
) -> None:
    """Everything the ``Tokenizer`` contract promises, on ``video`` ``[B, T, C, H, W]``.

    Protocol; ``encode`` shape equals ``tokens_shape`` (ids are ``long`` within
    ``vocab_size``); ``decode`` accepts ``Latents`` and their tensor and returns the video's
    shape in [-1, 1]; determinism; causality (latent ``j`` of a causal tokenizer with
    temporal compression ``c`` depends only on frames ``<= j·c``); clear errors for uint8 and
    wrongly shaped input; save/load round trip.
    """
    check_protocol(tokenizer, Tokenizer)
    b, t, _, h, w = video.shape
    latents = check_determinism(lambda: tokenizer.encode(video), what="encode")
    if not isinstance(latents, Latents):
        raise AssertionError(f"encode must return Latents; got {type(latents).__name__}")
    expected = (b, *tokenizer.tokens_shape(t, h, w))
    if tuple(latents.values.shape) != expected:
        raise AssertionError(
            f"encode(...).values has shape {tuple(latents.values.shape)}; "
            f"tokens_shape says {expected}"
        )
    if latents.kind != tokenizer.kind:
        raise AssertionError(f"Latents.kind {latents.kind!r} != tokenizer.kind {tokenizer.kind!r}")
    if tokenizer.kind == "discrete":
        if latents.values.dtype != torch.long:
            raise AssertionError(f"discrete tokens must be torch.long; got {latents.values.dtype}")
        if latents.values.min() < 0 or latents.values.max() >= tokenizer.vocab_size:
            raise AssertionError(f"token ids outside [0, {tokenizer.vocab_size})")
    recon = check_determinism(lambda: tokenizer.decode(latents), what="decode")
    check_video_out(recon, tuple(video.shape), "decode(encode(video))")
    assert_same(
        recon, tokenizer.decode(latents.values), atol=1e-6, what="decode(Latents) vs decode(tensor)"
    )
    if causal and t > 1:
        tc = tokenizer.temporal_compression
        check_causality(
            lambda v: tokenizer.encode(v).values,
            video,
            unaffected=lambda s: 1 + (s - 1) // tc,
            what="frames",
        )
    check_rejects(lambda: tokenizer.encode(((video + 1) * 127.5).to(torch.uint8)), match="video")
    check_rejects(lambda: tokenizer.encode(video[0]), match="video")
    if save_load and hasattr(tokenizer, "save_pretrained"):
        check_save_load(tokenizer, forward=lambda m: m.decode(m.encode(video)))  # type: ignore[arg-type,operator]


@torch.no_grad()
def check_latent_action_model(
    model: LatentActionModel, frames: Tensor, *, causal: bool = True, save_load: bool = True
) -> None:
    """Everything the ``LatentActionModel`` contract promises, on ``frames`` ``[B, T, C, H, W]``.

    ``infer`` gives one valid latent action per transition; ``apply`` returns a frame in
    [-1, 1]; determinism; latent action ``t`` depends only on frames ``<= t + 1``; save/load.
    """
    check_protocol(model, LatentActionModel)
    spec = model.latent_action_spec
    b, t, c, h, w = frames.shape
    latent = check_determinism(lambda: model.infer(frames), what="infer")
    spec.validate(latent, name="infer(frames)")
    if tuple(latent.shape[:2]) != (b, t - 1):
        raise AssertionError(
            f"infer must give [B, T - 1, ...] = {(b, t - 1)}; got {tuple(latent.shape)}"
        )
    nxt = check_determinism(lambda: model.apply(frames[:, 0], latent[:, 0]), what="apply")
    check_video_out(nxt.unsqueeze(1), (b, 1, c, h, w), "apply(frame, latent_action)")
    if causal and t > 2:
        check_causality(
            model.infer, frames, unaffected=lambda s: s - 1, positions=range(2, t), what="frames"
        )
    check_rejects(lambda: model.infer(frames[0]), match="frames")
    if save_load and hasattr(model, "save_pretrained"):
        check_save_load(model, forward=lambda m: m.infer(frames))  # type: ignore[arg-type,operator]
