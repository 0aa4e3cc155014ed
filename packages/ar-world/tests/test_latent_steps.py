"""ARWorldModel over a 4x temporally compressing discrete tokenizer: one sequence step per
latent of 4 frames (wmkit.ar_world.latent_steps)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from wmkit.ar_world import (
    ARState,
    ARWorldModel,
    CrossFrameDecoder,
    DiagonalDecoder,
    RasterDecoder,
    TokenLayout,
    Transformer,
)
from wmkit.ar_world.latent_steps import latent_clip
from wmkit.ar_world.lit import ARWorldModelModule
from wmkit.core import (
    ActionSpec,
    BufferedState,
    LatentStepModel,
    StreamingDecoder,
    step_action_spec,
    to_float_video,
)
from wmkit.core.testing import (
    ToyCompressiveTokenizer,
    ToyTokenizer,
    ToyVideoTokenizer,
    check_config_runs,
    check_world_model,
    moving_squares,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
K = 4


def _tok(patch: int = 8) -> ToyVideoTokenizer:
    return ToyVideoTokenizer(frames_per_latent=K, patch=patch, levels=2, kind="discrete")


def _model(spec: ActionSpec, mode: str = "tokens", tokenizer=None, **kw) -> ARWorldModel:
    torch.manual_seed(0)
    kw.setdefault("decoder", RasterDecoder())
    return ARWorldModel(
        spec, _tok() if tokenizer is None else tokenizer, (16, 16),
        transformer=Transformer(dim=32, depth=1, heads=2, ffn_multiple=32),
        layout=TokenLayout(mode), max_frames=3, **kw,
    ).eval()  # fmt: skip


def _lively(model: ARWorldModel) -> ARWorldModel:
    """Large random weights: a freshly initialised model barely reads its actions, so that a
    causality or guidance check would pass whatever the actions did."""
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return model


def _squares(length: int, continuous: bool = False, seed: int = 0):
    eps = moving_squares(2, length, 16, continuous=continuous, seed=seed)
    return to_float_video(eps.frames), torch.from_numpy(eps.actions), eps


def _record_decode_next(tokenizer) -> list[tuple[torch.Tensor, bool]]:
    """Wrap ``tokenizer.decode_next`` to record each call's latents and whether it started
    the video."""
    calls, decode_next = [], tokenizer.decode_next

    def recorded(latents, stream=None):
        calls.append((latents, stream is None))
        return decode_next(latents, stream)

    tokenizer.decode_next = recorded
    return calls


@pytest.mark.parametrize(
    ("mode", "spec", "decoder"),
    [
        ("tokens", ActionSpec.discrete(5), RasterDecoder()),
        ("embedding", ActionSpec.continuous(2), DiagonalDecoder(window=2)),
    ],
)
def test_k4_model_passes_world_model_conformance(mode, spec, decoder):
    """Bit-exact causality per latent step, determinism, rollout == buffered steps (lag k - 1,
    new_frames), bad inputs, save/load with the tokenizer in tokenizer/."""
    model = _lively(_model(spec, mode, decoder=decoder))
    assert model.frames_per_step == K and model.layout.spec == step_action_spec(spec, K)
    context, _, _ = _squares(6)  # trimmed to its last 1 + 4 frames: 2 latents
    actions = spec.sample((2, 6), generator=torch.Generator().manual_seed(1))  # 1.5 steps
    check_world_model(model, context, actions)


def test_stream_decodes_one_latent_per_step_and_matches_window_decode():
    """decode_next gets only the new latent (no history), a tokenizer without it decodes the
    kept window to the same frames; a cloned state (stream included) forks exactly."""
    spec = ActionSpec.discrete(5)
    model = _model(spec)
    context, actions, _ = _squares(9)
    calls = _record_decode_next(model.tokenizer)
    torch.manual_seed(0)
    streamed = model.rollout(context[:, :5], actions[:, 4:12])
    seen = [(tuple(z.shape), starts) for z, starts in calls]
    assert seen == [((2, 2, 2, 2), True), ((2, 1, 2, 2), False), ((2, 1, 2, 2), False)]

    class NoStream(ToyVideoTokenizer):
        decode_next = None  # type: ignore[assignment]

    plain = _model(spec, tokenizer=NoStream(K, patch=8, levels=2, kind="discrete"))
    assert not isinstance(plain.tokenizer, StreamingDecoder)  # decodes the kept window
    torch.manual_seed(0)
    windowed = plain.rollout(context[:, :5], actions[:, 4:12])
    torch.testing.assert_close(windowed.frames, streamed.frames, rtol=0, atol=0)

    state = model.reset(context[:, :5]).inner
    fork = state.clone()
    assert isinstance(fork, ARState) and fork.stream is state.stream
    torch.manual_seed(3)
    a = model.step_latent(state, actions[:, :K])
    torch.manual_seed(3)
    b = model.step_latent(fork, actions[:, :K])
    torch.testing.assert_close(a.frames, b.frames, rtol=0, atol=0)
    assert a.frames.shape == (2, K, 3, 16, 16) and a.rewards.shape == (2, K)
    assert state.t == fork.t == 5 + K


def test_lit_groups_actions_nulls_the_last_chunk_and_checks_clip_length():
    spec = ActionSpec.discrete(5)
    model = _model(spec)
    lit = ARWorldModelModule(model, action_dropout=0.0)
    frames, actions, eps = _squares(9)
    batch = {"frames": frames, "actions": actions, "rewards": torch.from_numpy(eps.rewards)}
    base = lit.losses(batch)
    assert torch.isfinite(base["loss"])
    changed = dict(batch, actions=actions.clone())
    changed["actions"][:, 8] = (actions[:, 8] + 1) % 5  # in the last latent's (null) chunk
    torch.testing.assert_close(lit.losses(changed)["loss"], base["loss"], rtol=0, atol=0)
    changed["actions"][:, 7] = (actions[:, 7] + 1) % 5  # conditions latent 2
    assert lit.losses(changed)["token_ce"] != base["token_ce"]
    cached = {
        "tokens": model.encode_frames(frames),
        "actions": actions,
        "rewards": batch["rewards"],
    }
    torch.testing.assert_close(lit.losses(cached)["loss"], base["loss"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="1 \\+ n·4"):
        lit.losses(dict(batch, frames=frames[:, :8]))
    with pytest.raises(ValueError, match="goal_prob"):
        ARWorldModelModule(model, goal_prob=0.5)

    steps = latent_clip(
        model.action_encoder, 3, K, torch.arange(9).view(1, 9) % 5,
        torch.arange(9.0).view(1, 9), torch.zeros(1, 9), torch.ones(1, 9, dtype=torch.bool),
    )  # fmt: skip
    assert steps.actions[0, :2].tolist() == [[0, 1, 2, 3], [4, 0, 1, 2]]
    assert steps.null.tolist() == [[False, False, True]]
    assert steps.rewards[0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 0, 0, 0]]
    assert steps.mask[0, :, 0].tolist() == [True, True, False]


def test_training_lowers_the_loss_on_a_fixed_batch():
    lit = ARWorldModelModule(_model(ActionSpec.discrete(5)).train(), lr=3e-3, action_dropout=0.0)
    frames, actions, eps = _squares(9)
    batch = {"frames": frames, "actions": actions, "rewards": torch.from_numpy(eps.rewards)}
    opt = torch.optim.AdamW(lit.model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss = lit.losses(batch, train=True)["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_action_guidance_runs_on_latent_steps():
    """Guidance scale 0 draws the first latent from the null chunk alone: its frames do not
    depend on the actions; scale 1 (off) they do."""
    context, _, _ = _squares(5)
    spec = ActionSpec.discrete(5)
    a = spec.sample((2, K), generator=torch.Generator().manual_seed(1))
    b = (a + 1) % 5
    for scale, same in ((0.0, True), (1.0, False)):
        model = _model(spec, decoder=RasterDecoder(guidance_scale=scale))
        _lively(model)
        frames = []
        for acts in (a, b):
            torch.manual_seed(0)
            frames.append(model.rollout(context, acts).frames)
        assert torch.equal(*frames) == same


def test_a_per_frame_model_is_a_latent_step_model_with_k_1():
    torch.manual_seed(0)
    model = ARWorldModel(ActionSpec.discrete(5), ToyTokenizer(patch=4, levels=2), max_frames=4)
    assert isinstance(model.eval(), LatentStepModel) and model.frames_per_step == 1
    context, actions, _ = _squares(2)
    torch.manual_seed(0)
    step = model.step(model.reset(context), actions[:, 0])
    torch.manual_seed(0)
    latent = model.step_latent(model.reset(context), actions[:, :1])
    torch.testing.assert_close(latent.frames[:, 0], step.frame, rtol=0, atol=0)
    torch.testing.assert_close(latent.rewards[:, 0], step.reward, rtol=0, atol=0)


def test_unsupported_combinations_are_refused():
    spec = ActionSpec.discrete(5)
    with pytest.raises(ValueError, match="CrossFrameDecoder"):
        _model(spec, decoder=CrossFrameDecoder())

    class Compressive4x(ToyCompressiveTokenizer):
        temporal_compression = K

    tok = Compressive4x(patch=4, future_patch=2, levels=2, context_frames=2)
    with pytest.raises(ValueError, match="compressive tokenizer"):
        _model(spec, tokenizer=tok)
    model = _model(spec)
    context, actions, _ = _squares(5)
    with pytest.raises(ValueError, match="goal_frame"):
        model.reset(context, goal_frame=context[:, 0])
    with pytest.raises(ValueError, match="one latent step"):
        model.step_latent(model.reset(context).inner, actions[:, :3])


def test_tiny_4x_config_fits_and_plays(tmp_path):
    """`wmkit ar-world fit` + `test` on tiny_4x.yaml, then play through the WorldModel
    protocol: one frame per step, k - 1 behind, the latent's frames on every k-th call."""
    fit, _ = check_config_runs(CONFIGS / "tiny_4x.yaml", tmp_path, fast_dev_run=2)
    model = fit.model.model.eval()
    assert model.frames_per_step == K
    context, _, _ = _squares(7)  # 7 frames: the last 5 (2 latents) are kept
    actions = model.action_spec.sample((2, 2 * K), generator=torch.Generator().manual_seed(0))
    state = model.reset(context)
    assert isinstance(state, BufferedState) and state.t == 5
    outs = []
    for t in range(2 * K):
        out = model.step(state, actions[:, t])
        assert out.frame.shape == (2, 3, 16, 16) and out.frame.abs().max() <= 1
        outs.append(out)
        state = out.state
    assert [o.lag for o in outs] == [1, 2, 3, 3, 3, 3, 3, 3]
    news = [o.new_frames for o in outs]
    assert [n is not None for n in news] == [False, False, False, True] * 2
    torch.testing.assert_close(outs[3].frame, news[3][:, 0], rtol=0, atol=0)
    torch.testing.assert_close(outs[7].frame, news[7][:, 0], rtol=0, atol=0)
    torch.testing.assert_close(outs[6].frame, news[3][:, 3], rtol=0, atol=0)
    assert outs[3].reward is not None and outs[0].reward is None


HAS_TOKENIZERS = importlib.util.find_spec("wmkit.tokenizers") is not None


@pytest.mark.skipif(not HAS_TOKENIZERS, reason="wmkit-tokenizers is not installed")
def test_over_a_tiny_random_vidtok_fsq_4x_saved_and_loaded_by_path(tmp_path):
    from wmkit.tokenizers import VidTokLayout, VidTokTokenizer  # a sibling package: tests only

    torch.manual_seed(0)
    vidtok = VidTokTokenizer(
        "tiny", regularizer="fsq", fsq_levels=[3, 3, 3], spatial_compression=8,
        temporal_compression=K, channels=8, layout=VidTokLayout(temporal_upsample="nearest"),
    ).eval()  # fmt: skip
    vidtok.save_pretrained(tmp_path / "vidtok")
    spec = ActionSpec.discrete(5)
    model = _model(spec, tokenizer=str(tmp_path / "vidtok"))
    assert model.frames_per_step == K and model.layout.h == model.layout.w == 2
    context, actions, _ = _squares(5)
    check_world_model(model, context, actions[:, :K])

    calls = _record_decode_next(model.tokenizer)  # the context's latents, then one per step
    torch.manual_seed(0)
    rollout = model.rollout(
        context, spec.sample((2, 3 * K), generator=torch.Generator().manual_seed(2))
    )
    assert [(z.shape[1], starts) for z, starts in calls] == [(2, True)] + [(1, False)] * 3
    whole = model.tokenizer.decode(torch.cat([z for z, _ in calls], 1)).clamp(-1, 1)  # history
    torch.testing.assert_close(rollout.frames, whole[:, 5:], rtol=0, atol=1e-5)
