"""`tools/bench_quality.py`: the quickstart recipe on each recorded env and on a dataset wmkit
never recorded, one table row per data × world × seed with the model beside copy-last-frame;
an env without its simulator is skipped with the reason."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from wmkit.apps.quickstart import PRESETS, QuickstartPlan
from wmkit.core.testing import loaded_script, write_lerobot_dataset

SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "bench_quality.py"


@pytest.fixture(scope="module")
def tool():
    with loaded_script(SCRIPT) as module:
        yield module


def _lerobot(root: Path) -> Path:
    """Six episodes of a block moving under 15 discrete actions, in LeRobot's layout."""
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(6):
        frames = np.zeros((16, 48, 48, 3), np.uint8)
        x = rng.integers(0, 40, 16)
        for t in range(16):
            frames[t, 8:16, x[t] : x[t] + 8] = 255
        episodes.append(
            {"frames": frames, "actions": rng.integers(0, 15, (16, 1)), "rewards": rng.random(16)}
        )
    return write_lerobot_dataset(root, episodes)


@pytest.mark.slow
def test_tiny_run_on_crafter_and_a_never_seen_dataset_prints_every_column(tool, tmp_path, capsys):
    data = _lerobot(tmp_path / "game")
    out = tmp_path / "quality.json"
    argv = ["--tiny", "--envs", "crafter", "--world", "diffusion", "--seeds", "0",
            "--data", str(data), "--action-spec", '{"kind": "discrete", "n": 15}',
            "--work", str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    assert tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert "$ wmkit record crafter" in printed and "--policy explore" in printed
    assert "| " + " | ".join(tool.COLUMNS) + " |" in printed
    table = [line for line in printed.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0] for line in table] == ["| crafter", "| game (never seen)"]
    assert all(len(line.split(" | ")) == len(tool.COLUMNS) for line in table)

    report = json.loads(out.read_text())
    assert report["preset"] == "tiny" and report["skipped"] == {}
    assert "CPU cores" in report["hardware"] and report["date"].count("-") == 2
    assert report["command"].startswith("uv run python tools/bench_quality.py --tiny")
    tiny = QuickstartPlan().scaled(**PRESETS["tiny"])
    assert report["plan"]["episodes"] == tiny.episodes
    crafter, game = report["runs"]
    assert crafter["data"] == "crafter" and game["data"] == "game (never seen)"
    assert crafter["record_command"].startswith("wmkit record crafter --out")
    assert crafter["record_s"] > 0 and game["record_s"] is None
    for row in (crafter, game):
        assert "error" not in row, row.get("error")
        assert (row["world"], row["seed"]) == ("diffusion", 0)
        for prefix in ("", "copy_last_", "reconstruction_"):
            assert 5 < row[f"{prefix}psnr"] < 80 and 5 < row[f"{prefix}psnr_frame_mean"] < 80
            assert -1 <= row[f"{prefix}ssim"] <= 1
            assert row[f"{prefix}lpips"] is None or 0 <= row[f"{prefix}lpips"] <= 1
        assert isinstance(row["beats_copy_last"], bool) and "copy last frame" in row["verdict"]
        assert row["verdict"].startswith("world model beats") == row["beats_copy_last"]
        assert math.isfinite(row["delta_psnr"])
        assert row["train_s"] == pytest.approx(row["tokenizer_s"] + row["world_s"] + row["gate_s"])
        assert row["gate_s"] > 0 and row["world_alone"]["psnr"] > 5  # served through its gate
        assert row["tokenizer_s"] > 0 and row["world_s"] > 0 and row["evaluate_s"] > 0
    assert not (tmp_path / "work" / "data" / "game-s0").exists()  # --data is not re-recorded


def test_an_env_without_its_simulator_is_skipped_with_the_reason(
    tool, tmp_path, capsys, monkeypatch
):
    import wmkit.core.data.envs as envs

    def missing(name, *args, **kwargs):
        raise ImportError(f"{name} needs pip install 'wmkit-core[{name}]'")

    monkeypatch.setattr(envs, "make_env", missing)
    out = tmp_path / "quality.json"
    assert tool.main(["--tiny", "--envs", "vizdoom", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipping vizdoom: its simulator is not installed" in printed
    assert "wmkit-core[vizdoom]" in printed
    report = json.loads(out.read_text())
    assert report["runs"] == [] and "wmkit-core[vizdoom]" in report["skipped"]["vizdoom"]


def test_record_commands_use_the_quickstart_budget_and_each_envs_settings(tool, tmp_path):
    plan = QuickstartPlan(seed=3).scaled(**PRESETS["tiny"])
    atari = tool.record_argv("atari", tmp_path, plan, "Breakout")
    assert atari[:3] == ["atari", "--out", str(tmp_path)]
    assert atari[atari.index("--episodes") + 1] == str(plan.episodes)
    assert atari[atari.index("--max-steps") + 1] == str(plan.max_steps)
    assert atari[atari.index("--resolution") + 1] == str(plan.resolution)
    assert atari[atari.index("--seed") + 1] == "3"
    assert atari[-2:] == ["--game", "Breakout"]
    assert "--policy" not in atari
    crafter = tool.record_argv("crafter", tmp_path, plan, "Breakout")
    assert "--game" not in crafter and crafter[-2:] == ["--policy", "explore"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--envs", "crafter,doom"], "unknown doom"),
        (["--world", "gan"], "--world takes diffusion and/or ar"),
        (["--seeds", "0,x"], "--seeds must be comma-separated integers"),
        (["--repeats", "0"], "--repeats must be >= 1"),
        (["--envs", "none"], "nothing to run"),
    ],
)
def test_bad_arguments_are_refused(tool, capsys, argv, message):
    with pytest.raises(SystemExit):
        tool.parse_args(argv)
    assert message in capsys.readouterr().err


def _row(seed, psnr, beats, **more):
    figures = {"psnr": psnr, "copy_last_psnr": 20.0, "psnr_frame_mean": 25.0,
               "copy_last_psnr_frame_mean": 26.0, "ssim": 0.8, "copy_last_ssim": 0.85,
               "lpips": None, "copy_last_lpips": None, "beats_copy_last": beats,
               "reconstruction_psnr": 29.0, "reconstruction_psnr_frame_mean": 30.0,
               "reconstruction_ssim": 0.9, "reconstruction_lpips": None,
               "delta_psnr": 0.5 * seed, "record_s": 3.0, "train_s": 10.0 + seed,
               "evaluate_s": 1.0}  # fmt: skip
    return {"data": "atari", "world": "ar", "seed": seed, **figures, **more}


def test_tables_show_failures_missing_lpips_and_the_spread_over_seeds(tool):
    rows = [_row(0, 21.0, True), _row(1, 23.0, False), _row(2, 22.0, True),
            {"data": "atari", "world": "ar", "seed": 3, "error": "record: boom"}]  # fmt: skip
    table = tool.markdown(rows).splitlines()
    assert len(table) == 2 + 4
    assert table[2].startswith("| atari | ar | 0 | 21.00 | 20.00 | 25.00 | 26.00 | 0.800 | ")
    # LPIPS not measured; the differences to copy-last to more digits; the tokenizer's ceiling
    margins, ceiling = "+1.000 / -1.000 / -0.0500 / –", "29.00 / 30.00 / 0.900 / –"
    # no gate: "–" for the world model alone
    assert f"| – | – | yes | {margins} | {ceiling} | +0.00 | – | 3 | 10 | 1 |" in table[2]
    assert "| failed: record: boom |" in table[5]
    gated = tool.markdown([_row(0, 21.0, True, world_alone={
        "psnr": 21.5, "psnr_frame_mean": 24.0, "ssim": 0.81, "lpips": 0.02, "delta_psnr": 0.8,
    })]).splitlines()[2]  # fmt: skip
    assert "| +0.00 | 21.50 / 24.00 / 0.810 / 0.0200 / +0.80 | 3 |" in gated
    assert all(len(line.split(" | ")) == len(tool.COLUMNS) for line in table[2:])
    spread = tool.summary(rows).splitlines()[2]
    assert spread.startswith("| atari | ar | 4 (1) | 22.00 (21.00 – 23.00) | 20.00 | ")
    assert "| +0.50 (+0.00 – +1.00) | 2/3 seeds | 11 (10 – 12) |" in spread
