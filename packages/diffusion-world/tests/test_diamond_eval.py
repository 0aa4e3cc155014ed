"""``wmkit eval rollout`` on a converted DIAMOND agent: the parity fixture's ``agent.pt``
(random weights, 9 actions) scored against copy-last-frame on MsPacman episodes recorded by
``wmkit record atari``, with DIAMOND's n = 4 conditioning frames as the default context and
the reward/end model's predictions scored (rewards by their sign)."""

from __future__ import annotations

import json

import pytest
import torch

from wmkit.core.cli import main as wmkit_main
from wmkit.core.data.envs.atari import rom_available
from wmkit.core.testing import needs_parity, parity_dir
from wmkit.diffusion_world.convert_diamond import convert_diamond

PARITY = parity_dir("diamond")
AGENT = PARITY / "atari" / "agent.pt"


@needs_parity("diamond", "atari", "agent.pt")
@pytest.mark.skipif(
    not rom_available("MsPacman"), reason="ale-py with the MsPacman ROM is not installed"
)
def test_eval_rollout_scores_a_converted_diamond_world(tmp_path, capsys):
    pytest.importorskip("wmkit.eval")
    torch.set_num_threads(1)
    data, out = tmp_path / "mspacman", tmp_path / "eval"
    record = ["record", "atari", "--game", "MsPacman", "--episodes", "2", "--max-steps", "20",
              "--out", str(data), "--format", "npz", "--no-progress"]  # fmt: skip
    assert wmkit_main(record) == 0
    convert_diamond(AGENT, tmp_path / "agent")
    argv = ["eval", "rollout", "--world", str(tmp_path / "agent" / "world"), "--data", str(data),
            "--split", "all", "--horizon", "4", "--batch-size", "4", "--lpips", "off",
            "--out", str(out)]  # fmt: skip
    assert wmkit_main(argv) == 0
    printed = capsys.readouterr().out
    assert "copy last frame" in printed and "reward MSE (of the reward's sign)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["context"] == 4 and metrics["info"]["context"] == 4  # DIAMOND's n
    assert metrics["horizon"] == 4 and metrics["num_clips"] == 4  # 2 clips of 8 per episode
    assert set(metrics["overall"]) >= {"model", "copy_last_frame"}
    heads = metrics["heads"]
    assert heads["reward_transform"] == "sign" and len(heads["reward_mse_per_step"]) == 4
    assert 0.0 <= heads["done_accuracy"] <= 1.0
    assert (out / "report.html").is_file()
