"""MBPO checkpoints: a run resumed from one ends as an uninterrupted run does, in process and
after a SIGKILL of `wmkit agents mbrl`."""

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from wmkit.agents import MBPO
from wmkit.agents.cli import run_mbrl
from wmkit.agents.mbpo_checkpoint import load_checkpoint
from wmkit.agents.testing import SquareGoalEnv, SquareGoalReward
from wmkit.core.testing import ToyWorldModel
from wmkit.core.testing.toy_lit import ToyWorldModelModule

FAST = dict(
    warmup_steps=30, init_model_steps=3, model_steps_per_iter=2, real_steps_per_iter=10,
    rollout_batch=4, rollout_horizon=2, batch_size=8, eval_episodes=1,
    algorithm_kwargs={"buffer_size": 500, "policy_kwargs": {"net_arch": [8]}},
)  # fmt: skip


def _mbpo(**kwargs):
    torch.manual_seed(0)
    env = SquareGoalEnv(16, continuous=True, max_steps=10)
    module = ToyWorldModelModule(ToyWorldModel(env.action_spec, hidden=8), lr=3e-3)
    return MBPO(module, env, reward_fn=SquareGoalReward(16), **copy.deepcopy({**FAST, **kwargs}))


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("algorithm", ["sac", "td3"])
def test_resumed_mbpo_ends_as_an_uninterrupted_one(tmp_path, algorithm):
    whole = _mbpo(algorithm=algorithm)
    expected = whole.run(3)
    first = _mbpo(algorithm=algorithm)
    first.run(1, checkpoint=tmp_path / "last.pt")
    resumed = _mbpo(algorithm=algorithm)  # a new process: built from its config, then loaded
    done = load_checkpoint(resumed, tmp_path / "last.pt")
    assert done.real_steps == expected.real_steps[:1]
    result = resumed.run(2, checkpoint=tmp_path / "last.pt", result=done)
    for key in ("real_steps", "eval_return", "model_loss", "imagined"):
        assert getattr(result, key) == getattr(expected, key), key
    assert _same_weights(resumed.module, whole.module)
    assert _same_weights(resumed.agent.policy, whole.agent.policy)
    torch.load(tmp_path / "last.pt", weights_only=True)  # plain data: no code unpickled


def test_load_checkpoint_says_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no MBPO checkpoint"):
        load_checkpoint(_mbpo(), tmp_path / "missing.pt")
    torch.save({"format": 99}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an MBPO checkpoint"):
        load_checkpoint(_mbpo(), tmp_path / "other.pt")


CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mbpo_tiny.yaml"
ARGS = ["-c", str(CONFIG), "--iterations=4", "--mbpo.warmup_steps=20",
        "--mbpo.init_model_steps=2", "--mbpo.model_steps_per_iter=2",
        "--mbpo.real_steps_per_iter=10", "--mbpo.rollout_batch=4", "--mbpo.rollouts_per_iter=1",
        "--mbpo.eval_episodes=1"]  # fmt: skip


def test_mbrl_killed_after_a_checkpoint_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    out = tmp_path / "killed"
    code = "import sys; from wmkit.core.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "agents", "mbrl", *ARGS, f"--out={out}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # as this process runs, below
        start_new_session=True,
    )
    ckpt = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    try:
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"mbrl ended (code {proc.returncode}) before {ckpt}"
        assert ckpt.exists(), f"no {ckpt} after 300 s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    saved = len(torch.load(ckpt, weights_only=True)["result"]["real_steps"])
    assert 1 <= saved < 4  # killed mid-run, after a checkpoint
    assert not (out / "result.json").exists()

    torch.set_num_threads(1)
    resumed = run_mbrl([*ARGS, f"--out={out}", "--ckpt_path=last"])
    whole = run_mbrl([*ARGS, f"--out={tmp_path / 'whole'}"])
    assert resumed.real_steps == whole.real_steps == [30, 40, 50, 60]
    for key in ("eval_return", "model_loss", "imagined"):
        assert getattr(resumed, key) == getattr(whole, key), key
    ends = [torch.load(d / "checkpoints" / "last.pt", weights_only=True)
            for d in (out, tmp_path / "whole")]  # fmt: skip
    for part in ("world_model", "agent", "world_optimizers"):
        torch.testing.assert_close(ends[0][part], ends[1][part], rtol=0, atol=0)
