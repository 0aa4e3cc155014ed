"""The conformance suite passes honest models and catches broken ones."""

import pytest
import torch

from wmkit.core import ActionSpec, StepOutput, WorldState
from wmkit.core.testing import (
    TokenizerTests,
    ToyTokenizer,
    ToyWorldModel,
    WorldModelTests,
    check_causality,
    check_determinism,
    check_rejects,
    check_save_load,
    check_tokenizer,
    check_world_model,
    moving_squares,
)
from wmkit.core.video import to_float_video


def _inputs(continuous=False, batch=2, context=2, steps=4, size=16):
    eps = moving_squares(batch, context + steps, size, continuous=continuous, seed=3)
    frames = to_float_video(eps.frames)
    actions = torch.from_numpy(eps.actions)
    return frames[:, :context], actions[:, context - 1 : context - 1 + steps], eps.action_spec


class TestToyWorldModelDiscrete(WorldModelTests):
    def make_model(self):
        return ToyWorldModel(ActionSpec.discrete(5), hidden=8)

    def make_inputs(self):
        context, actions, _ = _inputs()
        return context, actions


class TestToyWorldModelContinuous(WorldModelTests):
    def make_model(self):
        return ToyWorldModel(ActionSpec.continuous(2), hidden=8)

    def make_inputs(self):
        context, actions, _ = _inputs(continuous=True)
        return context, actions


class TestToyWorldModelMultiDiscrete(WorldModelTests):
    def make_model(self):
        return ToyWorldModel(ActionSpec.multi_discrete([2, 3, 4]), hidden=8)

    def make_inputs(self):
        context, _, _ = _inputs()
        spec = ActionSpec.multi_discrete([2, 3, 4])
        return context, spec.sample((2, 4), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_toy_tokenizer_conformance(kind):
    video = to_float_video(moving_squares(2, 5, 16, seed=1).frames)
    check_tokenizer(ToyTokenizer(patch=4, kind=kind), video)


class TestToyTokenizerSuite(TokenizerTests):
    def make_model(self):
        return ToyTokenizer(patch=2, levels=3)

    def make_inputs(self):
        return to_float_video(moving_squares(1, 3, 8, seed=0).frames)


# ---------------------------------------------------------------------------- broken models
class PeekingWorldModel(ToyWorldModel):
    """Non-causal: its rollout mixes in the *last* action of the whole sequence."""

    def rollout(self, context_frames, actions, context_actions=None):
        out = super().rollout(context_frames, actions, context_actions)
        out.frames = (out.frames + 0.01 * actions[:, -1:].float().view(-1, 1, 1, 1, 1)).clamp(-1, 1)
        return out


class NoisyWorldModel(ToyWorldModel):
    """Non-deterministic under a seed: draws noise from a generator nobody seeds."""

    _gen = torch.Generator().manual_seed(12345)

    def step(self, state: WorldState, action) -> StepOutput:
        out = super().step(state, action)
        noise = 0.01 * torch.randn(out.frame.shape, generator=self._gen)
        out.frame = (out.frame + noise).clamp(-1, 1)
        return out


class SilentWorldModel(ToyWorldModel):
    """Accepts any action without validation and crashes deep inside torch or silently."""

    def rollout(self, context_frames, actions, context_actions=None):
        state = self.reset(context_frames)
        frames = []
        for t in range(actions.shape[1]):
            frame, _ = self.predict(
                state.frames[:, -1],
                actions[:, t].long().clamp(0, 4).flatten()[: context_frames.shape[0]],
            )
            frames.append(frame)
        from wmkit.core import Rollout

        return Rollout(torch.stack(frames, 1))


def test_catches_non_causal_model():
    context, actions, spec = _inputs()
    with pytest.raises(AssertionError, match="not causal"):
        check_world_model(PeekingWorldModel(spec, hidden=8), context, actions, save_load=False)


def test_catches_non_deterministic_model():
    context, actions, spec = _inputs()
    with pytest.raises(AssertionError, match="not deterministic"):
        check_world_model(NoisyWorldModel(spec, hidden=8), context, actions, save_load=False)


def test_catches_missing_input_validation():
    context, actions, spec = _inputs()
    with pytest.raises(AssertionError, match="accepted silently|instead of a ValueError"):
        check_world_model(
            SilentWorldModel(spec, hidden=8), context, actions, causal=False, save_load=False
        )


def test_catches_non_causal_tokenizer():
    class Leaky(ToyTokenizer):
        def encode(self, video):
            latents = super().encode(video)
            latents.values = (latents.values + (video[:, -1:].mean() > 0).long()) % self.vocab_size
            return latents

    video = to_float_video(moving_squares(2, 5, 16, seed=1).frames)
    with pytest.raises(AssertionError, match="not causal"):
        check_tokenizer(Leaky(patch=4), video, save_load=False)


def test_causality_check_respects_unaffected_prefix():
    x = torch.randn(1, 6, 3)
    cumsum = lambda v: v.cumsum(1)  # noqa: E731 - causal
    check_causality(cumsum, x)
    reverse = lambda v: v.flip(1).cumsum(1).flip(1)  # noqa: E731 - anti-causal
    with pytest.raises(AssertionError, match="not causal"):
        check_causality(reverse, x)
    # a model that sees one frame ahead is causal only with a shifted prefix
    ahead = lambda v: torch.cat([v[:, 1:], v[:, -1:]], 1)  # noqa: E731
    with pytest.raises(AssertionError):
        check_causality(ahead, x)
    check_causality(ahead, x, unaffected=lambda t: t - 1)


def test_determinism_check():
    check_determinism(lambda: torch.randn(3))
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(AssertionError, match="not deterministic"):
        check_determinism(lambda: torch.randn(3, generator=gen))


def test_save_load_check_catches_unsaved_state(tmp_path):
    class Forgetful(ToyWorldModel):
        def __init__(self, action_spec: ActionSpec, hidden: int = 8):
            super().__init__(action_spec, hidden=hidden)
            self.offset = torch.randn(1)  # plain attribute: not in the state dict, not saved

        def predict(self, frame, action):
            nxt, reward = super().predict(frame, action)
            return (nxt + self.offset).clamp(-1, 1), reward

    context, actions, spec = _inputs()
    model = Forgetful(spec, hidden=8)
    with pytest.raises(AssertionError, match="after save/load"):
        check_save_load(model, forward=lambda m: m.rollout(context, actions).frames)


def test_check_rejects():
    check_rejects(lambda: (_ for _ in ()).throw(ValueError("bad actions")), match="actions")
    with pytest.raises(AssertionError, match="does not mention"):
        check_rejects(lambda: (_ for _ in ()).throw(ValueError("bad")), match="actions")
    with pytest.raises(AssertionError, match="instead of a ValueError"):
        check_rejects(lambda: (_ for _ in ()).throw(RuntimeError("deep torch crash")))
    with pytest.raises(AssertionError, match="accepted silently"):
        check_rejects(lambda: None)


def test_run_readme_examples(tmp_path):
    from wmkit.core.testing import readme_examples, run_readme_examples

    readme = tmp_path / "README.md"
    readme.write_text(
        "```python\nx = 2\n```\n<!-- no-test: slow -->\n```python\nraise SystemExit\n```\n"
        "```python\ny = x * 3\n```\n"
    )
    assert len(readme_examples(readme)) == 2
    assert run_readme_examples(readme, min_blocks=2)["y"] == 6
    with pytest.raises(AssertionError, match="expected >= 3"):
        run_readme_examples(readme, min_blocks=3)
    readme.write_text("```python\n1 / 0\n```\n")
    with pytest.raises(AssertionError, match="block 0 failed: ZeroDivisionError"):
        run_readme_examples(readme)
