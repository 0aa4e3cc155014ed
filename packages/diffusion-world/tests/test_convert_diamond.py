"""``wmkit convert diamond``: tensors-only reading, architectures inferred from shapes, the
other agent parts named, DIR/world loadable by path. (Parity with the released code:
``test_diamond_parity.py``.)"""

from __future__ import annotations

import pytest
import torch

from wmkit.core import ActionSpec, WorldModel, load_pretrained
from wmkit.core.cli import main as wmkit_main
from wmkit.diffusion_world.convert_diamond import (
    CSGO_PRESETS,
    convert_diamond_agent,
    diamond_network_config,
    read_diamond_checkpoint,
    split_agent_state,
)
from wmkit.diffusion_world.diamond import DIAMOND_NETWORK_SIZES, DiamondWorldModel

TINY = {**DIAMOND_NETWORK_SIZES["tiny"], "depths": [1, 2], "attn_depths": [0, 1]}


class _RunsCode:
    """Unpickling this calls ``Path.touch`` on ``marker``: code a checkpoint must not run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def _tiny_agent(multi_hot: bool = False) -> tuple[DiamondWorldModel, dict]:
    """A tiny random world and a DIAMOND-style agent state dict holding it, plus the parts
    this converter leaves to others and an unknown one."""
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
    state = dict(world.state_dict())
    state["actor_critic.actor_linear.weight"] = torch.zeros(5, 4)
    state["rew_end_model.head.0.weight"] = torch.zeros(3, 4)
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
    assert "1 actor_critic.*, the policy (wmkit-agents)" in printed
    assert "1 rew_end_model.*, the reward/termination model" in printed
    assert "1 optimizer.*, unknown part, ignored" in printed
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
    a = world.rollout(frames, actions).frames
    torch.manual_seed(3)
    assert torch.equal(loaded.rollout(frames, actions).frames, a)


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
