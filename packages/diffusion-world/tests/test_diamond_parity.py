"""Released DIAMOND agents convert into ``DiamondWorldModel`` and reproduce the original code's
outputs: preconditioning, embeddings, network output, denoised frames, the samplers' recorded
trajectories (Atari released and Heun+churn; CS:GO ``fast`` and ``higher_quality``) and CS:GO's
full-resolution upsampling (fixtures made by running eloialonso/diamond; tolerances from the
fixtures' README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from wmkit.core import WorldModel, load_pretrained
from wmkit.core.testing import needs_parity, parity_dir
from wmkit.diffusion_world.convert_diamond import (
    convert_diamond_agent,
    diamond_world_config,
    read_diamond_checkpoint,
)
from wmkit.diffusion_world.diamond import (
    DiamondDenoiser,
    DiamondSampler,
    DiamondSamplerConfig,
    DiamondWorldModel,
    upsample_next_obs,
)

PARITY = parity_dir("diamond")
RAW_ATOL = 1e-5  # raw float outputs
GRID = 2 / 255  # one step of the 8-bit grid, twice: what a flipped quantisation moves
FLIP_FRACTION = 1e-3  # quantised outputs: at most this share of elements may move

pytestmark = needs_parity("diamond")


def assert_raw(got: torch.Tensor, want: torch.Tensor, what: str, atol: float = RAW_ATOL) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    diff = (got.double() - want.double()).abs().max().item()
    assert diff <= atol, f"{what}: max |diff| {diff:.3g} > {atol:g}"


def assert_quantised(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Discontinuous (8-bit) outputs: ≤ 2/255 apart, on at most 0.1 % of the elements."""
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    diff = (got.double() - want.double()).abs()
    moved = (diff > RAW_ATOL).float().mean().item()
    assert diff.max().item() <= GRID + RAW_ATOL, f"{what}: max |diff| {diff.max().item():.4g}"
    assert moved <= FLIP_FRACTION, f"{what}: {moved:.3%} of the elements moved"


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict:
    """Per case: io tensors, config, agent state, and the world converted to a directory
    and loaded back by path (``wmkit.core.load_pretrained``)."""
    out = {}
    for name in ("atari", "csgo"):
        case = PARITY / name
        state = read_diamond_checkpoint(case / "agent.pt")
        config = yaml.safe_load((case / "config.yaml").read_text())
        target = tmp_path_factory.mktemp(name)
        convert_diamond_agent(state, target, agent_config=config, source=str(case / "agent.pt"))
        world = load_pretrained(target / "world")
        out[name] = {
            "root": target,
            "io": load_file(str(case / "io.safetensors")),
            "config": config,
            "state": state,
            "world": world,
            "dir": target / "world",
        }
    return out


def _parts(name: str) -> list[str]:
    return ["denoiser", "upsampler"] if name == "csgo" else ["denoiser"]


def _denoiser(world: DiamondWorldModel, part: str) -> DiamondDenoiser:
    return world.denoiser if part == "denoiser" else world.upsampler  # type: ignore[return-value]


def _prev(io: dict, part: str) -> torch.Tensor:
    """The conditioning frames as the denoiser takes them ``[B, k·C, H, W]``."""
    prev = io[f"{part}.prev_obs"].flatten(1, 2)
    if part == "upsampler":
        prev = torch.cat([prev, io["upsampler.low_res_upsampled"]], dim=1)
    return prev


@pytest.mark.parametrize("name", ["atari", "csgo"])
def test_converted_world_is_a_world_model(cases, name):
    world = cases[name]["world"]
    assert isinstance(world, DiamondWorldModel) and isinstance(world, WorldModel)
    assert (world.upsampler is not None) == (name == "csgo")
    expected = 9 if name == "atari" else 51
    assert world.denoiser.inner_model.num_actions == expected


@pytest.mark.parametrize("name", ["atari", "csgo"])
def test_conditioners_and_embeddings(cases, name):
    io, world = cases[name]["io"], cases[name]["world"]
    for part in _parts(name):
        den = _denoiser(world, part)
        net = den.inner_model
        b = io[f"{part}.prev_obs"].shape[0]
        sigma_cond = io.get(f"{part}.sigma_cond")
        for i, sigma in enumerate(io[f"{part}.sigma"]):
            cs = den.objective.conditioners(sigma.repeat(b), sigma_cond)
            for k in ("c_in", "c_out", "c_skip", "c_noise", "c_noise_cond"):
                if f"{part}.{k}" in io:
                    assert_raw(getattr(cs, k).flatten(), io[f"{part}.{k}"][i], f"{part}.{k}", 0)
            act = io.get(f"{part}.prev_act")
            with torch.no_grad():
                cond = net.conditioning(cs.c_noise, cs.c_noise_cond, act)
                assert_raw(cond, io[f"{part}.cond"][i], f"{part}.cond[{i}]")
                if f"{part}.noise_emb_out" in io:
                    emb = net.noise_emb(cs.c_noise[:1])[0]
                    assert_raw(emb, io[f"{part}.noise_emb_out"][i], f"{part}.noise_emb_out")
        if f"{part}.act_emb_out" in io:
            with torch.no_grad():
                emb = net.action_embedding(io[f"{part}.prev_act"])
            assert_raw(emb, io[f"{part}.act_emb_out"], f"{part}.act_emb_out")


@pytest.mark.parametrize("name", ["atari", "csgo"])
def test_network_output_and_denoised_frames(cases, name):
    io, world = cases[name]["io"], cases[name]["world"]
    for part in _parts(name):
        den = _denoiser(world, part)
        prev, act = _prev(io, part), io.get(f"{part}.prev_act")
        noisy_all = (
            io[f"{part}.next_obs_clean"]
            + io[f"{part}.sigma"].view(-1, 1, 1, 1, 1) * (io[f"{part}.noise"])
        )
        assert_raw(noisy_all, io[f"{part}.noisy_next_obs"], f"{part}.noisy_next_obs")
        for i, sigma in enumerate(io[f"{part}.sigma"]):
            x = io[f"{part}.noisy_next_obs"][i]
            sigma_b = sigma.repeat(x.shape[0])
            sigma_cond = io.get(f"{part}.sigma_cond")
            cs = den.objective.conditioners(sigma_b, sigma_cond)
            with torch.no_grad():
                out = den.model_output(x, prev, act, cs)
            assert_raw(out, io[f"{part}.inner_out"][i], f"{part}.inner_out[{i}]")
            raw = den.denoise(x, sigma_b, prev, act, sigma_cond, quantize=False)
            assert_raw(raw, io[f"{part}.denoised_raw"][i], f"{part}.denoised_raw[{i}]")
            d = den.denoise(x, sigma_b, prev, act, sigma_cond)
            assert_quantised(d, io[f"{part}.denoised"][i], f"{part}.denoised[{i}]")
            grid = (d + 1) * 127.5
            assert torch.allclose(grid, grid.round(), atol=1e-4) and d.abs().max() <= 1


def _check_draws(io: dict, prefix: str, seed: int, draws: list[str]) -> None:
    """The recorded draws are what a generator seeded ``seed`` gives, in this order (so
    matching the trajectory proves the sampler draws in the released order)."""
    g = torch.Generator().manual_seed(seed)
    for name in draws:
        want = io[f"{prefix}.{name}"]
        assert torch.equal(torch.randn(want.shape, generator=g), want), f"{prefix}.{name}"


def test_atari_released_sampler(cases):
    io, world = cases["atari"]["io"], cases["atari"]["world"]
    sampler = world.sampler
    assert sampler.config == DiamondSamplerConfig()  # the released setting, from config.yaml
    assert torch.equal(sampler.sigmas("cpu"), io["sampler.sigmas"])
    _check_draws(io, "sampler", 123, ["init_noise"])
    out = sampler.sample(
        io["denoiser.prev_obs"], io["denoiser.prev_act"], torch.Generator().manual_seed(123)
    )
    assert torch.equal(out.trajectory[:, 0], io["sampler.init_noise"])
    assert_quantised(out.trajectory, io["sampler.trajectory"], "sampler.trajectory")
    assert_quantised(out.next_obs, io["sampler.next_obs"], "sampler.next_obs")


def test_atari_heun_churn_sampler(cases):
    io, world = cases["atari"]["io"], cases["atari"]["world"]
    settings = dict(cases["atari"]["config"]["fixture"]["sampler_heun_churn_settings"])
    sampler = DiamondSampler(world.denoiser, DiamondSamplerConfig(**settings))
    assert sampler.config.s_tmax is None  # .inf in the YAML
    draws = ["init_noise", "randn_draw01", "randn_draw02", "randn_draw03"]
    _check_draws(io, "sampler_heun_churn", 123, draws)
    out = sampler.sample(
        io["denoiser.prev_obs"], io["denoiser.prev_act"], torch.Generator().manual_seed(123)
    )
    assert torch.equal(sampler.sigmas("cpu"), io["sampler_heun_churn.sigmas"])
    traj = io["sampler_heun_churn.trajectory"]
    assert_quantised(out.trajectory, traj, "sampler_heun_churn.trajectory")
    assert_quantised(out.next_obs, io["sampler_heun_churn.next_obs"], "heun next_obs")


@pytest.mark.parametrize("preset", ["fast", "higher_quality"])
def test_csgo_next_frame_presets(cases, preset):
    io, world = cases["csgo"]["io"], cases["csgo"]["world"]
    raw = dict(cases["csgo"]["config"]["world_model_env_presets"][preset]["next_obs"])
    raw.pop("_target_")
    sampler = DiamondSampler(world.denoiser, DiamondSamplerConfig(**raw))
    prefix = f"{preset}.sampler_next_obs"
    steps = sampler.config.num_steps_denoising
    _check_draws(
        io, prefix, 123, ["init_noise", *(f"randn_draw{i:02d}" for i in range(1, 2 * steps + 1))]
    )
    out = sampler.sample(
        io["denoiser.prev_obs"], io["denoiser.prev_act"], torch.Generator().manual_seed(123)
    )
    assert torch.equal(sampler.sigmas("cpu"), io[f"{prefix}.sigmas"])
    assert_quantised(out.next_obs, io[f"{prefix}.next_obs"], f"{prefix}.next_obs")
    if f"{prefix}.trajectory" in io:
        assert_quantised(out.trajectory, io[f"{prefix}.trajectory"], f"{prefix}.trajectory")
    if preset == "fast":  # the converted world's own sampler is the default preset
        assert world.sampler.config == sampler.config


def test_csgo_full_resolution_upsampling(cases):
    io, world = cases["csgo"]["io"], cases["csgo"]["world"]
    prefix = "fast.sampler_upsampling"
    low = io["fast.sampler_next_obs.next_obs"]
    assert_raw(world.upsampler.upsampled(low), io[f"{prefix}.low_res_upsampled"], "bicubic x5")
    _check_draws(io, prefix, 321, ["init_noise", "randn_draw01"])
    out = upsample_next_obs(
        world.up_sampler, io["step.prev_full_res"], low, torch.Generator().manual_seed(321)
    )
    assert torch.equal(world.up_sampler.sigmas("cpu"), io[f"{prefix}.sigmas"])
    assert out.next_obs.shape == (1, 3, 150, 280)
    assert_quantised(out.next_obs, io[f"{prefix}.next_obs"], f"{prefix}.next_obs")


def test_atari_world_step_reproduces_the_sampler(cases):
    """``reset`` on the 4 conditioning frames and their first 3 actions, then ``step`` with
    the 4th action, is the released sampler's call."""
    io, world = cases["atari"]["io"], cases["atari"]["world"]
    state = world.reset(io["denoiser.prev_obs"], io["denoiser.prev_act"][:, :3])
    step = world.step(
        state, io["denoiser.prev_act"][:, 3], generator=torch.Generator().manual_seed(123)
    )
    assert_quantised(step.frame, io["sampler.next_obs"], "world step frame")
    assert step.reward.shape == (2,) and step.done.shape == (2,)  # the reward/end model's
    assert torch.equal(step.state.obs[:, -1], step.frame)
    assert torch.equal(step.state.actions, io["denoiser.prev_act"][:, 1:])


def _saved_keys(directory: Path) -> set[str]:
    with safe_open(str(directory / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


@pytest.mark.parametrize("name", ["atari", "csgo"])
def test_converted_keys_are_the_released_ones(cases, name):
    """``DIR/world`` (``denoiser.*``, ``upsampler.*``, ``rew_end_model.*``) and ``DIR/policy``
    (``actor_critic.*``, prefix stripped) together hold exactly the released keys; built at
    the released widths (meta device), every key has the released shape."""
    released = json.loads((PARITY / name / "released_shapes.json").read_text())
    shapes = {k: tuple(v) for k, v in released["state_dict_shapes"].items()}
    world_shapes = {k: v for k, v in shapes.items() if not k.startswith("actor_critic.")}
    policy_shapes = {k.removeprefix("actor_critic."): v for k, v in shapes.items()
                     if k.startswith("actor_critic.")}  # fmt: skip
    root = cases[name]["root"]
    assert _saved_keys(root / "world") == set(world_shapes)
    assert (root / "policy").is_dir() == bool(policy_shapes)
    if policy_shapes:
        assert _saved_keys(root / "policy") == set(policy_shapes)
    meta_state = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    kwargs = diamond_world_config(meta_state, agent_config=released["agent_config"])
    assert ("reward_end" in kwargs) == (name == "atari")
    with torch.device("meta"):
        world = DiamondWorldModel(**kwargs)
    built = {k: tuple(v.shape) for k, v in world.state_dict().items()}
    assert built == world_shapes
    params = sum(v.numel() for v in world.state_dict().values())
    assert params == sum(torch.Size(s).numel() for s in world_shapes.values())
    if policy_shapes:
        from wmkit.agents.diamond_actor_critic import actor_critic_from_released

        with torch.device("meta"):
            policy = actor_critic_from_released(
                {k: torch.empty(v) for k, v in policy_shapes.items()}
            )
        assert {k: tuple(v.shape) for k, v in policy.state_dict().items()} == policy_shapes


@torch.no_grad()
def test_atari_reward_end_burn_in_and_step_match_the_original(cases, monkeypatch):
    """The converted world's reward/end model, stepped as DIAMOND's ``WorldModelEnv`` steps
    it: ``reset`` on n = 4 frames and their first 3 actions burns the LSTM in on those 3
    transitions from a zero state (upstream: ``predict_rew_end(obs[:, :-1], act[:, :-1],
    obs[:, 1:])`` on the spawn segment), then ``step`` with the 4th action reads the
    transition (last conditioning frame, action, generated frame) from that state. The
    sampler is replaced by one returning ``rew_end.frames[:, 4]`` so that the transition is
    the recorded one: the logits, the carried (h, c) and the reward/done draws then follow
    the original code's outputs."""
    io, world = cases["atari"]["io"], cases["atari"]["world"]
    frames, act = io["rew_end.frames"], io["rew_end.act"]  # [2, 5, 3, 64, 64], [2, 4]
    state = world.reset(frames[:, :4], act[:, :3])
    h, c = state.rew_end_state
    assert_raw(h[0], io["rew_end.one_at_a_time.h"][:, 2], "burn-in h")
    assert_raw(c[0], io["rew_end.one_at_a_time.c"][:, 2], "burn-in c")

    class _Recorded:
        next_obs = frames[:, 4]

    monkeypatch.setattr(world.sampler, "sample", lambda *a, **k: _Recorded())
    seen = []
    hook = world.rew_end_model.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        out = world.step(state, act[:, 3], generator=torch.Generator().manual_seed(7))
    finally:
        hook.remove()
    logits_rew, logits_end, (h, c) = seen[0]
    assert_raw(logits_rew[:, 0], io["rew_end.all_at_once.logits_rew"][:, 3], "step logits_rew")
    assert_raw(logits_end[:, 0], io["rew_end.all_at_once.logits_end"][:, 3], "step logits_end")
    assert_raw(out.state.rew_end_state[0][0], io["rew_end.one_at_a_time.h"][:, 3], "step h")
    assert_raw(out.state.rew_end_state[1][0], io["rew_end.one_at_a_time.c"][:, 3], "step c")
    assert_raw(h, io["rew_end.all_at_once.h"], "step h vs all-at-once")
    g = torch.Generator().manual_seed(7)
    want_rew = torch.multinomial(
        io["rew_end.all_at_once.logits_rew"][:, 3].softmax(-1), 1, generator=g
    )
    want_end = torch.multinomial(
        io["rew_end.all_at_once.logits_end"][:, 3].softmax(-1), 1, generator=g
    )
    assert torch.equal(out.reward, want_rew[:, 0].float() - 1)
    assert torch.equal(out.done, want_end[:, 0].float())


@torch.no_grad()
def test_atari_policy_dir_reproduces_the_actor_critic(cases):
    """``DIR/policy`` loaded by path reproduces ``actor_critic.*`` step by step from the zero
    state on ``rew_end.frames[:, 1:]``."""
    io = cases["atari"]["io"]
    policy = load_pretrained(cases["atari"]["root"] / "policy")
    frames = io["rew_end.frames"][:, 1:]
    state = None
    for t in range(frames.shape[1]):
        out = policy.predict(frames[:, t], state)
        state = out.state
        assert_raw(out.logits, io["actor_critic.logits_act"][:, t], f"logits step {t}")
        assert_raw(out.value, io["actor_critic.val"][:, t], f"value step {t}")


def test_reloaded_world_round_trips(cases, tmp_path):
    """The loaded directory saves and loads again to the same weights and config."""
    world = cases["csgo"]["world"]
    world.save_pretrained(tmp_path / "again")
    again = load_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == json.loads(
        (cases["csgo"]["dir"] / "config.json").read_text()
    )
    for k, v in world.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


@pytest.mark.parametrize("name", ["atari", "csgo"])
def test_parts_load_the_released_state_dict_strictly(cases, name):
    """Each part loads its released tensors, prefix stripped, with ``strict=True``: the
    denoiser / upsampler its ``denoiser.*`` / ``upsampler.*``, the network ``*.inner_model.*``."""
    state, world = cases[name]["state"], cases[name]["world"]
    for part in _parts(name):
        den = _denoiser(world, part)
        strip = {k[len(part) + 1 :]: v for k, v in state.items() if k.startswith(part + ".")}
        den.load_state_dict(strip, strict=True)
        inner = {k[len("inner_model.") :]: v for k, v in strip.items()}
        den.inner_model.load_state_dict(inner, strict=True)
        assert torch.equal(den.inner_model.noise_emb.weight, strip["inner_model.noise_emb.weight"])
