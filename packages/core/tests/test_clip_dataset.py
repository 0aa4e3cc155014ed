import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from wmkit.core.data.clip_dataset import ClipDataset, RandomClipSampler, split_episodes
from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.core.data.episode_store import EpisodeStore, EpisodeWriter
from wmkit.core.testing import moving_squares


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips") / "squares"
    eps = moving_squares(10, 20, 16, seed=0)
    writer = EpisodeWriter(
        root, action_spec=eps.action_spec, fps=10, env="squares", episodes_per_shard=4, chunk=8
    )
    for i in range(10):
        t = 20 - i  # lengths 20 .. 11
        writer.add_episode(
            eps.frames[i, :t], eps.actions[i, :t], eps.rewards[i, :t], eps.dones[i, :t]
        )
    writer.close()
    return root


def test_split_is_deterministic_disjoint_and_complete():
    a = split_episodes(50, (0.8, 0.1, 0.1), seed=1)
    assert a == split_episodes(50, (0.8, 0.1, 0.1), seed=1)
    assert a != split_episodes(50, (0.8, 0.1, 0.1), seed=2)
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(50))
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (40, 5, 5)
    small = split_episodes(3, (0.9, 0.05, 0.05))
    assert all(len(v) == 1 for v in small.values())
    with pytest.raises(ValueError, match="fractions"):
        split_episodes(10, (1.0, -0.1, 0.1))


def test_sequential_clips_match_episodes(dataset_dir):
    store = EpisodeStore(dataset_dir)
    data = ClipDataset(store, clip_length=4, frame_skip=2, mode="sequential")
    assert data.span == 7 and data.stride == 8
    expected = sum(len(range(0, store.episode_length(e) - 7 + 1, 8)) for e in range(10))
    assert len(data) == expected
    item = data[3]
    ep, start = item["episode"], item["start"]
    frames, steps = store.read_episode(ep)
    assert item["frames"].shape == (4, 3, 16, 16) and item["frames"].dtype == torch.float32
    window = torch.from_numpy(frames[start : start + 7 : 2]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.equal(item["frames"], window)
    assert torch.equal(item["actions"], torch.from_numpy(steps["actions"][start : start + 7 : 2]))
    r = steps["rewards"][start : start + 7]
    expected_r = [r[0:2].sum(), r[2:4].sum(), r[4:6].sum(), r[6:7].sum()]
    assert np.allclose(item["rewards"].numpy(), expected_r)
    assert item["dones"].dtype == torch.bool


def test_clips_end_on_the_final_observation_with_its_step_masked(tmp_path):
    """A clip may end on an episode's final observation: its transition from the last real
    step is complete, and the padded step after it is masked; ``final_frames=False`` and
    episodes without one clip as before."""
    eps = moving_squares(2, 12, 16, seed=1)
    eps.dones[:, 9] = True  # episode ends after action 9 (frame 10 is its final observation)
    writer = EpisodeWriter(tmp_path / "d", action_spec=eps.action_spec, fps=10, env="squares")
    writer.add_episode(eps.frames[0, :10], eps.actions[0, :10], eps.rewards[0, :10],
                       eps.dones[0, :10], final_frame=eps.frames[0, 10])  # fmt: skip
    writer.add_episode(eps.frames[1, :10], eps.actions[1, :10], eps.rewards[1, :10],
                       eps.dones[1, :10])  # fmt: skip
    writer.close()
    store = EpisodeStore(tmp_path / "d")
    data = ClipDataset(store, clip_length=4, mode="sequential", stride=1)
    assert len(data) == (11 - 3) + (10 - 3)  # one more start in the episode with a final frame
    last = next(data[i] for i in range(len(data)) if data.clip_location(i) == (0, 7))
    expected = torch.from_numpy(eps.frames[0, 7:11]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.equal(last["frames"], expected)
    assert last["step_mask"].tolist() == [True, True, True, False]
    assert last["dones"].tolist() == [False, False, True, False]  # the done's next frame is in
    assert last["rewards"][3] == 0 and last["actions"][3] == last["actions"][2]
    assert all(data[i]["step_mask"].all() for i in range(len(data)) if data[i]["episode"] == 1)
    assert len(ClipDataset(store, clip_length=4, mode="sequential", stride=1,
                           final_frames=False)) == 7 + 7  # fmt: skip
    skipped = ClipDataset(store, clip_length=3, frame_skip=2, mode="sequential", stride=1)
    end = next(skipped[i] for i in range(len(skipped)) if skipped.clip_location(i) == (0, 6))
    assert end["step_mask"].tolist() == [True, True, False]  # frames 6, 8, 10 (final)
    assert end["dones"].tolist() == [False, True, False]  # steps 8 and 9 hold the done
    single = ClipDataset(store, clip_length=1, mode="sequential", stride=1)
    assert len(single) == 11 + 10
    final = single[10]  # episode 0's final observation on its own
    assert (final["episode"], final["start"]) == (0, 10)
    assert final["step_mask"].tolist() == [False] and final["actions"].tolist() == [
        int(eps.actions[0, 9])
    ]


def test_random_mode_is_reproducible_and_epochs_differ(dataset_dir):
    store = EpisodeStore(dataset_dir)
    data = ClipDataset(store, clip_length=8, mode="random", samples_per_epoch=12, seed=3)
    again = ClipDataset(store, clip_length=8, mode="random", samples_per_epoch=12, seed=3)
    locs = [data.clip_location(i) for i in range(12)]
    assert locs == [again.clip_location(i) for i in range(12)]
    for ep, start in locs:
        assert 0 <= start <= store.episode_length(ep) - 8
    sampler = RandomClipSampler(data, num_replicas=1, rank=0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 == list(range(12)) and epoch1 == list(range(12, 24))
    assert [data.clip_location(i) for i in epoch1] != locs


def test_two_ranks_cover_disjoint_and_complete(dataset_dir):
    store = EpisodeStore(dataset_dir)
    seq = ClipDataset(store, clip_length=4, mode="sequential")
    shares = [set(DistributedSampler(seq, num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)]
    assert shares[0].isdisjoint(shares[1]) or len(seq) % 2  # padding only when odd
    assert shares[0] | shares[1] == set(range(len(seq)))
    rnd = ClipDataset(store, clip_length=4, mode="random", samples_per_epoch=20)
    draws = [list(RandomClipSampler(rnd, num_replicas=2, rank=r)) for r in (0, 1)]
    assert set(draws[0]).isdisjoint(draws[1]) and sorted(draws[0] + draws[1]) == list(range(20))


def test_too_short_episodes(dataset_dir):
    with pytest.raises(ValueError, match="no episode is long enough.*longest has 20"):
        ClipDataset(EpisodeStore(dataset_dir), clip_length=30)


def test_resize_and_frames_only(dataset_dir):
    data = ClipDataset(EpisodeStore(dataset_dir), clip_length=3, resolution=8, with_steps=False)
    item = data[0]
    assert item["frames"].shape == (3, 3, 8, 8) and "actions" not in item


@pytest.mark.parametrize("workers", [0, 2])
def test_datamodule_batches(dataset_dir, workers):
    dm = EpisodeDataModule(
        str(dataset_dir),
        clip_length=6,
        batch_size=4,
        num_workers=workers,
        split=(0.6, 0.2, 0.2),
        samples_per_epoch=16,
    )
    assert dm.action_spec.n == 5
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (4, 6, 3, 16, 16)
    assert batch["actions"].shape == (4, 6) and batch["actions"].dtype == torch.long
    assert batch["rewards"].shape == (4, 6)
    val_eps = {int(e) for b in dm.val_dataloader() for e in b["episode"]}
    train_eps = {int(e) for b in dm.train_dataloader() for e in b["episode"]}
    assert val_eps and val_eps.isdisjoint(train_eps)


def test_ddp_two_processes_share_evaluation(dataset_dir, tmp_path):
    """Real DDP (2 CPU processes, gloo): validation clips split disjointly and completely,
    training draws disjoint. Rank 1 is forked (``ddp_fork``) rather than started as a fresh
    interpreter, so it does not import torch and Lightning again; the sampling is the same."""
    script = tmp_path / "ddp_run.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys, torch, lightning as L
        from wmkit.core.data.datamodule import EpisodeDataModule

        class Spy(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(1))
                self.seen = {{"train": [], "val": []}}
            def training_step(self, batch, i):
                pairs = zip(batch["episode"], batch["start"])
                self.seen["train"] += [[int(e), int(s)] for e, s in pairs]
                return (self.w * batch["frames"].mean()).sum()
            def validation_step(self, batch, i):
                pairs = zip(batch["episode"], batch["start"])
                self.seen["val"] += [[int(e), int(s)] for e, s in pairs]
            def on_validation_epoch_end(self):
                with open(f"{tmp_path}/rank{{self.global_rank}}.json", "w") as f:
                    json.dump(self.seen, f)
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        if __name__ == "__main__":
            dm = EpisodeDataModule("{dataset_dir}", clip_length=4, batch_size=1,
                                   split=(0.5, 0.5, 0.0), samples_per_epoch=8)
            trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_fork", max_epochs=1,
                                logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False,
                                num_sanity_val_steps=0)
            trainer.fit(Spy(), dm)
    """)
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    train = [{tuple(x) for x in s["train"]} for s in seen]
    assert len(seen[0]["train"]) == len(seen[1]["train"]) == 4
    val = [[tuple(x) for x in s["val"]] for s in seen]
    dm = EpisodeDataModule(str(dataset_dir), clip_length=4, split=(0.5, 0.5, 0.0))
    dm.setup()
    expected = {dm.datasets["val"].clip_location(i) for i in range(len(dm.datasets["val"]))}
    assert set(val[0]) | set(val[1]) == expected
    if len(expected) % 2 == 0:
        assert set(val[0]).isdisjoint(val[1])
    assert train[0] != train[1]
