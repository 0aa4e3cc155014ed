"""``wmkit convert diamond``: tensors-only reading, architectures inferred from shapes, the
reward/end model into DIR/world and the actor-critic into DIR/policy (or skipped with a note
when wmkit-agents is missing), unknown parts named, both directories loadable by path.
(Parity with the released code: ``test_diamond_parity.py``.)"""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
import torch

from wmkit.core import ActionSpec, WorldModel, load_pretrained
from wmkit.core.cli import main as wmkit_main
from wmkit.diffusion_world.convert_diamond import (
    CSGO_PRESETS,
    REWARD_END_CLASS,
    convert_diamond_agent,
    diamond_network_config,
    read_diamond_checkpoint,
    split_agent_state,
)
from wmkit.diffusion_world.diamond import (
    DIAMOND_NETWORK_SIZES,
    DiamondRewardEnd,
    DiamondWorldModel,
    RewardEndConfig,
)

TINY = {**DIAMOND_NETWORK_SIZES["tiny"], "depths": [1, 2], "attn_depths": [0, 1]}


class _RunsCode:
    """Unpickling this calls ``Path.touch`` on ``marker``: code a checkpoint must not run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


TINY_REW_END = RewardEndConfig(
    num_actions=5, lstm_dim=8, img_size=20, cond_channels=8, depths=[1, 1], channels=[4, 4],
    attn_depths=[0, 0],
)  # fmt: skip


def _tiny_agent(multi_hot: bool = False) -> tuple[DiamondWorldModel, dict]:
    """A tiny random world and a DIAMOND-style agent state dict holding it, plus (discrete,
    the Atari layout) a tiny reward/end model and actor-critic, and an unknown part."""
    torch.manual_seed(0)
    spec = ActionSpec.multi_discrete([2] * 6) if multi_hot else ActionSpec.discrete(5)
    upsampler = None
    if multi_hot:
        # factor 5: what the converter assumes (a state dict does not hold it)
        upsampler = {"network": {**TINY, "num_steps_conditioning": 1, "noise_cond_embedding": True}}
    world = DiamondWorldModel(
        spec,
        network={**TINY, "noise_cond_embedding": multi_hot},
        objective={"sigma_offset_noise": 0.1 if multi_hot else 0.3},
        sampler=CSGO_PRESETS["fast"]["next_obs"] if multi_hot else None,
        noise_previous_obs=multi_hot,
        upsampler=upsampler,
    )
    if not multi_hot:
        world.rew_end_model = DiamondRewardEnd(TINY_REW_END)
        with torch.no_grad():  # DIAMOND's LSTM init is near-uniform; make the heads speak
            for p in world.rew_end_model.head.parameters():
                p.normal_()
    state = dict(world.state_dict())
    if not multi_hot:
        from wmkit.agents.diamond_actor_critic import DiamondActorCritic

        net = DiamondActorCritic(5, lstm_dim=8, img_size=20, channels=[4, 8], down=[1, 1])
        state.update({f"actor_critic.{k}": v for k, v in net.state_dict().items()})
    state["optimizer.step"] = torch.zeros(())
    return world, state


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "agent.pt"
    torch.save(
        {"denoiser.inner_model.noise_emb.weight": torch.zeros(1, 4), "x": _RunsCode(marker)}, bad
    )
    with pytest.raises(ValueError, match="refusing to read .*agent.pt.*not a tensors-only"):
        read_diamond_checkpoint(bad)
    code = None
    with pytest.raises(ValueError, match="refusing"):
        code = wmkit_main(["convert", "diamond", str(bad), "--out", str(tmp_path / "o")])
    assert code is None and not marker.exists() and not (tmp_path / "o").exists()


def test_missing_file_and_non_agent_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="DIAMOND agent checkpoint not found"):
        read_diamond_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="no denoiser"):
        convert_diamond_agent({"actor_critic.w": torch.zeros(2)})


@pytest.mark.parametrize("multi_hot", [False, True])
def test_convert_tiny_agent_round_trips(tmp_path, capsys, multi_hot):
    world, state = _tiny_agent(multi_hot)
    path = tmp_path / "agent.pt"
    torch.save(state, path)
    assert wmkit_main(["convert", "diamond", str(path), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "not converted: 1 optimizer.*, unknown part, ignored" in printed
    assert ("reward/end model" in printed) == (not multi_hot)
    assert ("policy: converted" in printed) == (not multi_hot)
    assert (tmp_path / "out" / "policy").is_dir() == (not multi_hot)
    loaded = load_pretrained(tmp_path / "out" / "world")
    assert isinstance(loaded, DiamondWorldModel) and isinstance(loaded, WorldModel)
    assert loaded.action_spec == world.action_spec
    assert (loaded.upsampler is not None) == multi_hot
    assert loaded.denoiser.objective == world.denoiser.objective
    assert loaded.sampler.config == world.sampler.config
    assert loaded.denoiser.noise_previous_obs == multi_hot
    want = world.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    frames = torch.rand(1, 2, 3, 20, 20) * 2 - 1
    actions = world.action_spec.sample((1, 2), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    a = world.rollout(frames, actions)
    torch.manual_seed(3)
    b = loaded.rollout(frames, actions)
    assert torch.equal(b.frames, a.frames)
    assert (b.rewards is not None) == (not multi_hot)
    if not multi_hot:
        assert torch.equal(b.rewards, a.rewards) and torch.equal(b.dones, a.dones)
        # the reward/end model is saved as JSON class_path/init_args and round-trips
        config = json.loads((tmp_path / "out" / "world" / "config.json").read_text())
        assert config["reward_end"] == {
            "class_path": REWARD_END_CLASS,
            "init_args": {"config": dataclasses.asdict(TINY_REW_END)},
        }
        loaded.save_pretrained(tmp_path / "again")
        assert json.loads((tmp_path / "again" / "config.json").read_text()) == config
        policy = load_pretrained(tmp_path / "out" / "policy")
        want = {k[len("actor_critic.") :]: v for k, v in state.items() if "actor_critic." in k}
        assert set(policy.state_dict()) == set(want)
        assert all(torch.equal(policy.state_dict()[k], v) for k, v in want.items())


def test_policy_is_skipped_with_a_note_without_wmkit_agents(tmp_path, capsys, monkeypatch):
    """diffusion-world does not depend on wmkit-agents: without it the world model still
    converts and the message names the package to install."""
    _, state = _tiny_agent()
    path = tmp_path / "agent.pt"
    torch.save(state, path)
    monkeypatch.setitem(sys.modules, "wmkit.agents.diamond_actor_critic", None)  # not importable
    converted = convert_diamond_agent(state, tmp_path / "a")
    assert converted.policy is None and "actor_critic" in converted.skipped
    assert converted.notes and "pip install wmkit-agents" in converted.notes[0]
    assert wmkit_main(["convert", "diamond", str(path), "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert "skipped the policy" in printed and "pip install wmkit-agents" in printed
    assert "actor_critic.*, the policy (install wmkit-agents" in printed
    for out in ("a", "b"):
        assert (tmp_path / out / "world" / "config.json").is_file()
        assert not (tmp_path / out / "policy").exists()
    assert load_pretrained(tmp_path / "b" / "world").rew_end_model is not None


def test_reward_end_and_policy_can_be_left_out(tmp_path):
    _, state = _tiny_agent()
    converted = convert_diamond_agent(state, tmp_path, reward_end=False, policy=False)
    assert converted.world.rew_end_model is None and converted.policy is None
    assert set(converted.skipped) == {"actor_critic", "rew_end_model", "optimizer"}
    assert not (tmp_path / "policy").exists()


def test_network_config_is_read_off_the_shapes():
    _, state = _tiny_agent()
    cfg = diamond_network_config(split_agent_state(state)["denoiser"])
    assert cfg == {**TINY, "img_channels": 3, "num_steps_conditioning": 4, "num_actions": 5,
                   "noise_cond_embedding": False, "upsampler": False}  # fmt: skip


def test_mismatched_tensors_are_refused():
    _, state = _tiny_agent()
    state["denoiser.inner_model.conv_out.bias"] = torch.zeros(4)
    with pytest.raises(ValueError, match="does not match the inferred world model"):
        convert_diamond_agent(state)
    _, state = _tiny_agent()
    state["denoiser.inner_model.act_emb.0.weight"] = torch.zeros(5, 3)
    with pytest.raises(ValueError, match="act_emb width 3"):
        convert_diamond_agent(state)


def test_reward_end_needs_its_tensors():
    _, state = _tiny_agent()
    state = {k: v for k, v in state.items() if not k.startswith("rew_end_model.")}
    with pytest.raises(ValueError, match="no rew_end_model"):
        convert_diamond_agent(state, reward_end={"class_path": "wmkit.x.Y", "init_args": {}})
    _, state = _tiny_agent()
    del state["rew_end_model.lstm.weight_hh_l0"]
    with pytest.raises(ValueError, match="rew_end_model: not a DIAMOND reward/end state dict"):
        convert_diamond_agent(state)
    _, state = _tiny_agent()
    del state["actor_critic.actor_linear.weight"]
    with pytest.raises(ValueError, match="not a DIAMOND actor-critic"):
        convert_diamond_agent(state)


def test_agent_yaml_settings_are_used(tmp_path):
    """``--config``: the settings a state dict lacks come from the upstream agent YAML."""
    _, state = _tiny_agent()
    path = tmp_path / "agent.pt"
    torch.save(state, path)
    config = tmp_path / "agent.yaml"
    config.write_text(
        "denoiser:\n  sigma_data: 0.5\n  sigma_offset_noise: 0.2\n"
        "world_model_env:\n  diffusion_sampler:\n    num_steps_denoising: 2\n    order: 2\n"
        "    s_churn: 1.0\n    s_tmax: .inf\n"
    )
    out = tmp_path / "out"
    argv = ["convert", "diamond", str(path), "--config", str(config), "--out", str(out)]
    assert wmkit_main(argv) == 0
    loaded = load_pretrained(out / "world")
    assert loaded.denoiser.objective.sigma_offset_noise == 0.2
    cfg = loaded.sampler.config
    assert (cfg.num_steps_denoising, cfg.order, cfg.s_churn, cfg.s_tmax) == (2, 2, 1.0, None)
    with pytest.raises(FileNotFoundError, match="agent config not found"):
        wmkit_main(["convert", "diamond", str(path), "--config", str(tmp_path / "no.yaml"),
                    "--out", str(out)])  # fmt: skip
