"""Driving world models with latent actions: a labelled dataset any world model trains on,
the real-action mapper, and imitation of a demo video, all through the core protocols."""

import numpy as np
import pytest
import torch

from wmkit.core import WorldModel, load_pretrained, to_float_video
from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.core.data.source import EpisodeSource
from wmkit.core.testing import ToyWorldModel, check_save_load, check_world_model, cpu_trainer
from wmkit.core.testing.toy_lit import ToyWorldModelModule
from wmkit.latent_action import (
    ActionMapper,
    ArrayEpisodes,
    LatentActionSource,
    LatentDecoderWorldModel,
    MappedWorldModel,
    collect_transitions,
    fit_action_mapper,
    imitate,
    label_episodes,
)


def test_latent_action_source_yields_latent_actions(trained, squares):
    action_free = ArrayEpisodes(squares.frames[:6])
    labelled = LatentActionSource(action_free, trained)
    assert isinstance(labelled, EpisodeSource)
    assert labelled.action_spec == trained.latent_action_spec
    assert len(labelled) == 6 and labelled.episode_length(2) == 8
    steps = labelled.read_steps(2, 3, 8)
    expected = trained.infer(to_float_video(squares.frames[2]))[0, 3:8].numpy()
    np.testing.assert_array_equal(steps["actions"], expected)
    assert steps["dones"][-1] and not steps["dones"][0]
    assert labelled.read_frames(2, 0, 8).shape == (8, 16, 16, 3)
    with pytest.raises(IndexError, match="one frame shorter"):
        labelled.read_frames(2, 0, 9)
    with pytest.raises(TypeError, match="LatentActionModel"):
        LatentActionSource(action_free, object())  # type: ignore[arg-type]


def test_labelling_keeps_returns_terminations_and_final_observations(trained, squares, tmp_path):
    """Without a final observation the dropped last step's reward and done move to the step
    before; with one (a recorded dataset) every step is labelled and the frame is kept."""
    from wmkit.core.data.episode_store import EpisodeStore, EpisodeWriter

    rewards = np.random.default_rng(0).random((2, 9)).astype(np.float32)
    dones = np.zeros((2, 9), bool)
    dones[:, -1] = True
    plain = LatentActionSource(ArrayEpisodes(squares.frames[:2], rewards=rewards, dones=dones),
                               trained)  # fmt: skip
    steps = plain.read_steps(0, 0, 8)
    assert steps["rewards"].sum() == pytest.approx(rewards[0].sum(), rel=1e-6)
    assert steps["dones"].tolist() == [False] * 7 + [True] and not plain.has_final_frame(0)
    writer = EpisodeWriter(tmp_path / "rec", action_spec=squares.action_spec, fps=10, env="sq")
    for i in range(2):
        writer.add_episode(squares.frames[i, :8], squares.actions[i, :8], rewards[i, :8],
                           dones[i, 1:], final_frame=squares.frames[i, 8])  # fmt: skip
    writer.close()
    recorded = LatentActionSource(EpisodeStore(tmp_path / "rec"), trained)
    assert recorded.episode_length(1) == 8 and recorded.has_final_frame(1)
    steps = recorded.read_steps(1, 0, 8)
    expected = trained.infer(to_float_video(squares.frames[1]))[0].numpy()  # all 9 frames
    np.testing.assert_array_equal(steps["actions"], expected)
    np.testing.assert_array_equal(steps["rewards"], rewards[1, :8])
    assert steps["dones"].tolist() == [False] * 7 + [True]
    np.testing.assert_array_equal(recorded.read_frames(1, 0, 9), squares.frames[1])
    path = label_episodes(trained, EpisodeStore(tmp_path / "rec"), tmp_path / "labelled")
    assert EpisodeStore(path).has_final_frame(0)
    np.testing.assert_array_equal(EpisodeStore(path).final_frame(0), squares.frames[0, 8])


def test_world_model_trains_on_labelled_action_free_video(trained, squares, tmp_path):
    path = label_episodes(trained, ArrayEpisodes(squares.frames[:40]), tmp_path / "labelled")
    data = EpisodeDataModule(
        str(path), clip_length=4, batch_size=16, split=(0.8, 0.1, 0.1), samples_per_epoch=320
    )
    assert data.action_spec == trained.latent_action_spec
    torch.manual_seed(0)
    module = ToyWorldModelModule(ToyWorldModel(data.action_spec, hidden=16), lr=3e-3)
    trainer = cpu_trainer(max_epochs=8)
    trainer.fit(module, data)
    metrics = trainer.validate(module, data, verbose=False)[0]
    assert metrics["val/frame_mse"] < metrics["val/copy_last_mse"]


def test_action_mapper_plays_a_latent_world_model_with_real_controls(trained, squares_source):
    latents, actions = collect_transitions(trained, squares_source, range(10))
    spec = squares_source.action_spec
    mapper = fit_action_mapper(actions, latents, spec, trained.latent_action_spec, steps=200)
    mapped = mapper(actions)
    trained.latent_action_spec.validate(mapped, batch_dims=1)
    # the mapper picks, per real action, the latent most often inferred for it: applying it
    # moves the square the way the real action does
    frames = to_float_video(squares_source.read_frames(12, 0, 9))
    real = torch.from_numpy(squares_source.read_steps(12, 0, 8)["actions"])
    world = MappedWorldModel(LatentDecoderWorldModel(trained), mapper)
    assert isinstance(world, WorldModel) and world.action_spec == spec
    check_world_model(world, frames[:, :1], real[None, :4], save_load=False)
    check_save_load(mapper, forward=lambda m: m(actions[:16]))
    assert isinstance(ActionMapper, type)


def _centroid(video: torch.Tensor) -> torch.Tensor:
    """Square centre ``[T, 2]`` of a moving-squares video ``[T, C, H, W]``."""
    mask = (video.mean(1) > -0.5).float()  # [T, H, W]
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    total = mask.sum((1, 2)).clamp_min(1)
    return torch.stack([(mask * ys).sum((1, 2)) / total, (mask * xs).sum((1, 2)) / total], 1)


def test_imitation_replays_demo_motion_in_a_new_scene(trained, squares):
    video = to_float_video(squares.frames)  # [N, T, C, H, W]
    demo, scene = video[44:45], video[50:51, :1]
    result = imitate(trained, demo, scene)
    assert result.frames.shape == (1, 8, 3, 16, 16)
    demo_motion = torch.diff(_centroid(demo[0]), dim=0)
    new_motion = torch.diff(_centroid(torch.cat([scene[0], result.frames[0]])), dim=0)
    # where the demo's square moves, the new one moves the same way along that axis; where
    # it stands still, the new one drifts less than a pixel (sub-pixel drift off the moving
    # axis is blur, not motion)
    moves = demo_motion != 0
    agree = (torch.sign(new_motion[moves]) == torch.sign(demo_motion[moves])).float().mean()
    assert agree > 0.6, (demo_motion, new_motion)
    assert new_motion[~moves].abs().max() < 1.0, (demo_motion, new_motion)
    # any WorldModel over the latent spec works, e.g. core's toy model
    toy = ToyWorldModel(trained.latent_action_spec)
    assert imitate(trained, demo, video[:3, :2], world_model=toy).frames.shape == (3, 8, 3, 16, 16)
    with pytest.raises(ValueError, match="action spec"):
        imitate(trained, demo, scene, world_model=ToyWorldModel(squares.action_spec))
    with pytest.raises(ValueError, match="demo"):
        imitate(trained, demo[:, :1], scene)


def test_latent_decoder_world_model_conformance(trained, squares):
    video = to_float_video(squares.frames[:2])
    world = LatentDecoderWorldModel(trained)
    check_world_model(world, video[:, :2], trained.infer(video)[:, :4], save_load=False)
    assert load_pretrained  # imported for the README's load path
