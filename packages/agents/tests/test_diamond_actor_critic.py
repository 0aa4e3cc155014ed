"""DIAMOND's actor-critic loads the released ``actor_critic.*`` weights strictly, reproduces the
original code's outputs (fixtures made by running eloialonso/diamond; 1e-5 as their README
says) and acts as a wmkit-agents ``Policy``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from wmkit.agents import Policy
from wmkit.agents.diamond_actor_critic import (
    DiamondActorCritic,
    DiamondPolicy,
    actor_critic_from_released,
)
from wmkit.core import load_pretrained
from wmkit.core.testing import needs_parity, parity_dir

PARITY = parity_dir("diamond")
ATOL = 1e-5

needs_fixtures = needs_parity("diamond", "atari")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def released() -> tuple[DiamondActorCritic, dict[str, torch.Tensor]]:
    state = torch.load(PARITY / "atari" / "agent.pt", map_location="cpu", weights_only=True)
    state = {k.removeprefix("actor_critic."): v for k, v in state.items()
             if k.startswith("actor_critic.")}  # fmt: skip
    return actor_critic_from_released(state).eval(), load_file(PARITY / "atari" / "io.safetensors")


def _tiny(num_actions: int = 3, **kw) -> DiamondActorCritic:
    torch.manual_seed(0)
    net = DiamondActorCritic(
        num_actions, lstm_dim=8, img_size=16, channels=[4, 8], down=[1, 1], **kw
    )
    with torch.no_grad():  # the heads start at zero; give them something to say
        for p in (*net.actor_linear.parameters(), *net.critic_linear.parameters()):
            p.normal_()
    return net


@needs_fixtures
def test_config_read_from_fixture_shapes(released) -> None:
    net, _ = released
    assert (net.num_actions, net.lstm_dim, net.img_size) == (9, 32, 64)
    assert net._hub_mixin_config["channels"] == [32, 32, 64, 64]
    assert net._hub_mixin_config["down"] == [1, 1, 1, 1]


@needs_fixtures
def test_released_widths_have_the_released_keys_and_shapes() -> None:
    released = json.loads((PARITY / "atari" / "released_shapes.json").read_text())
    want = {
        k.removeprefix("actor_critic."): list(v)
        for k, v in released["state_dict_shapes"].items()
        if k.startswith("actor_critic.")
    }
    with torch.device("meta"):
        net = DiamondActorCritic(released["num_actions"])
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == want


@needs_fixtures
@torch.no_grad()
def test_step_by_step_matches_the_original(released) -> None:
    """Four steps from the zero state on ``rew_end.frames[:, 1:]``: logits, values, (h, c)
    and the encoder's features within 1e-5."""
    net, io = released
    frames = io["rew_end.frames"][:, 1:]
    state, logits, values, hs, cs = None, [], [], [], []
    for t in range(frames.shape[1]):
        out = net.predict(frames[:, t], state)
        state = out.state
        logits.append(out.logits)
        values.append(out.value)
        hs.append(state[0])
        cs.append(state[1])
        want_enc = io["actor_critic.encoder_out"][:, t]
        torch.testing.assert_close(net.encode(frames[:, t]), want_enc, atol=ATOL, rtol=0)
    for got, key in ((logits, "logits_act"), (values, "val"), (hs, "h"), (cs, "c")):
        want = io[f"actor_critic.{key}"]
        torch.testing.assert_close(torch.stack(got, 1), want, atol=ATOL, rtol=0)


@needs_fixtures
@torch.no_grad()
def test_policy_on_uint8_frames_equals_the_network(released, tmp_path) -> None:
    """The policy maps uint8 HWC frames to DIAMOND's input and carries the state: greedy
    actions equal the arg-max of the original code's logits; saved and reloaded it acts the
    same."""
    net, io = released
    frames = io["rew_end.frames"][:, 1:]  # on the 8-bit grid
    u8 = ((frames + 1) / 2 * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()
    policy = DiamondPolicy(net, greedy=True)
    assert isinstance(policy, Policy)
    actions = np.stack([policy(u8[:, t]) for t in range(u8.shape[1])], 1)
    assert actions.dtype == np.int64
    np.testing.assert_array_equal(actions, io["actor_critic.logits_act"].argmax(-1).numpy())
    torch.testing.assert_close(policy.last.value, io["actor_critic.val"][:, -1], atol=ATOL, rtol=0)
    policy.save_pretrained(tmp_path / "policy")
    assert isinstance(load_pretrained(tmp_path / "policy"), DiamondActorCritic)
    again = DiamondPolicy.from_pretrained(tmp_path / "policy", greedy=True)
    np.testing.assert_array_equal(
        np.stack([again(u8[:, t]) for t in range(u8.shape[1])], 1), actions
    )


def test_policy_samples_with_its_seed_and_resets_its_state() -> None:
    net = _tiny()
    frames = torch.rand(4, 6, 3, 16, 16) * 2 - 1

    def run(policy: DiamondPolicy) -> np.ndarray:
        policy.reset()
        return np.stack([policy(frames[:, t]) for t in range(frames.shape[1])], 1)

    a, b, c = DiamondPolicy(net, seed=1), DiamondPolicy(net, seed=1), DiamondPolicy(net, seed=2)
    first = run(a)
    np.testing.assert_array_equal(first, run(b))
    assert not np.array_equal(first, run(c))
    assert first.min() >= 0 and first.max() < 3
    # reset() returns to the zero state: the first step's logits come out the same again.
    a.reset()
    a(frames[:, 0])
    logits0 = a.last.logits.clone()
    a(frames[:, 1])
    a.reset()
    a(frames[:, 0])
    torch.testing.assert_close(a.last.logits, logits0, atol=0, rtol=0)
    # Without a reset the state carries: the same frame twice gives different logits.
    a(frames[:, 0])
    assert not torch.equal(a.last.logits, logits0)


def test_from_released_reads_other_sizes_and_round_trips(tmp_path) -> None:
    net = _tiny(num_actions=5, img_channels=1)
    net2 = DiamondActorCritic(6, lstm_dim=8, img_size=16, channels=[4, 4, 8], down=[1, 0, 1])
    for original in (net, net2):
        rebuilt = actor_critic_from_released(
            {f"actor_critic.{k}": v for k, v in original.state_dict().items()}, img_size=16
        )
        assert rebuilt._hub_mixin_config == original._hub_mixin_config
        original.save_pretrained(tmp_path / "n")
        loaded = DiamondActorCritic.from_pretrained(tmp_path / "n")
        x = torch.rand(2, original.img_channels, 16, 16) * 2 - 1
        torch.testing.assert_close(loaded.predict(x).logits, original.predict(x).logits)


def test_bad_inputs_raise_clear_errors() -> None:
    net = _tiny()
    policy = DiamondPolicy(net)
    with pytest.raises(ValueError, match=r"obs must be uint8 \[B, 16, 16, 3\]"):
        policy(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="must be float"):
        policy(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    policy(np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="batch size changed from 2 to 1"):
        policy(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="state must be"):
        net.predict(torch.zeros(2, 3, 16, 16), (torch.zeros(2, 3), torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="divisible by 2"):
        DiamondActorCritic(3, img_size=20)
    with pytest.raises(ValueError, match="missing"):
        actor_critic_from_released({"lstm.weight_hh": torch.zeros(4, 1)})
    with pytest.raises(ValueError, match="fits no pooling"):
        actor_critic_from_released(net.state_dict(), img_size=64)
    with pytest.raises(TypeError, match="DiamondActorCritic"):
        DiamondPolicy(torch.nn.Linear(2, 2))


def test_agents_do_not_import_the_world_model_packages() -> None:
    """Packages meet through wmkit-core: the agent loads without diffusion-world."""
    import subprocess
    import sys

    code = (
        "import sys, wmkit.agents.diamond_actor_critic; "
        "print(sorted(m for m in sys.modules if m.startswith(('wmkit.diffusion_world', "
        "'wmkit.ar_world'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
