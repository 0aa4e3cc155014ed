"""`wmkit play` with an agent driving: the policy's actions replace the person's until control
is handed over (DIAMOND's play), in the session, over the WebSocket and from the command line."""

import asyncio
import io
import json

import numpy as np
import pytest
import torch
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from wmkit.apps.play.cli import _parser, build_session, load_policy
from wmkit.apps.play.server import ProtocolError, create_app, parse_message
from wmkit.apps.play.session import PlaySession


class ScriptedPolicy:
    """Always ``action``; counts the frames it saw and its resets."""

    def __init__(self, action: int) -> None:
        self.action, self.seen, self.resets = action, [], 0

    def reset(self) -> None:
        self.resets += 1

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        assert obs.dtype == np.uint8 and obs.shape[0] == 1
        self.seen.append(obs[0].copy())
        return np.full(obs.shape[0], self.action, np.int64)


def _x(frame: np.ndarray) -> int:
    return int(np.nonzero(frame[..., 0] > 100)[1].min())


def _y(frame: np.ndarray) -> int:
    return int(np.nonzero(frame[..., 0] > 100)[0].min())


def test_agent_drives_then_hands_control_to_the_person(world, context):
    policy = ScriptedPolicy(action=4)  # right
    s = PlaySession(world, context=context, policy=policy)
    assert s.driver == "agent" and s.drivers == ["person", "agent"]
    first = s.reset()
    assert policy.resets == 1
    moved = s.step(torch.tensor(1))  # the person presses "up": ignored, the agent goes right
    assert _x(moved) > _x(first) and _y(moved) == _y(first)
    assert np.array_equal(policy.seen[-1], first)  # it acted on the frame on screen
    s.set_driver("person")
    up = s.step(torch.tensor(1))
    assert _y(up) < _y(moved) and _x(up) == _x(moved)
    assert len(policy.seen) == 2  # it keeps watching while the person drives
    s.set_driver("agent")
    assert _x(s.step(torch.tensor(0))) > _x(up)
    s.reset()
    assert policy.resets == 2


def test_driver_checks(world, context):
    s = PlaySession(world, context=context)
    assert s.driver == "person" and s.drivers == ["person"]
    with pytest.raises(ValueError, match="driver must be one of"):
        s.set_driver("agent")
    with pytest.raises(TypeError, match="policy must have reset"):
        PlaySession(world, context=context, policy=object())
    person_first = PlaySession(world, context=context, policy=ScriptedPolicy(4), driver="person")
    assert person_first.driver == "person"
    assert parse_message('{"type": "driver", "driver": "agent"}')["driver"] == "agent"
    with pytest.raises(ProtocolError, match='"person" or "agent"'):
        parse_message('{"type": "driver", "driver": "robot"}')


async def _next(ws, kind: str):
    """Next message of a kind: "frame" (a decoded PNG) or a JSON "type"."""
    async with asyncio.timeout(5.0):
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY and kind == "frame":
                return np.asarray(Image.open(io.BytesIO(msg.data)).convert("RGB"))
            if msg.type == WSMsgType.TEXT and json.loads(msg.data)["type"] == kind:
                return json.loads(msg.data)


def test_driver_message_over_the_websocket(world, context, tmp_path):
    """The page learns the drivers from /config; a driver message hands control over, and
    the status says who drives."""

    async def main():
        session = PlaySession(world, context=context, record_dir=tmp_path,
                              policy=ScriptedPolicy(4))  # fmt: skip
        app = create_app(session, fps=40)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            config = await (await client.get("/config")).json()
            assert config["drivers"] == ["person", "agent"] and config["driver"] == "agent"
            assert "driver-toggle" in await (await client.get("/")).text()
            ws = await client.ws_connect("/ws")
            first = await _next(ws, "frame")
            assert (await _next(ws, "status"))["driver"] == "agent"
            for _ in range(3):  # no key held, yet the agent moves the square right
                frame = await _next(ws, "frame")
            assert _x(frame) > _x(first)
            await ws.send_json({"type": "driver", "driver": "person"})
            while (await _next(ws, "status"))["driver"] != "person":
                pass
            held = await _next(ws, "frame")
            for _ in range(3):  # the person holds nothing: the square stays
                assert np.array_equal(await _next(ws, "frame"), held)
            await ws.close()

    asyncio.run(main())


def test_command_line_policy_loads_and_must_fit_the_actions(tmp_path):
    from wmkit.agents import DiamondActorCritic, DiamondPolicy

    torch.manual_seed(0)
    DiamondActorCritic(17, lstm_dim=8, channels=[4, 4], down=[1, 1]).save_pretrained(
        tmp_path / "crafter_policy"
    )
    policy = load_policy(tmp_path / "crafter_policy", greedy=True, seed=3)
    assert isinstance(policy, DiamondPolicy) and policy.greedy and policy.seed == 3
    args = ["--env", "crafter", "--policy", str(tmp_path / "crafter_policy"),
            "--env-arg", "area=32"]  # fmt: skip
    session, _ = build_session(_parser().parse_args(args))
    assert session.driver == "agent" and isinstance(session.policy, DiamondPolicy)
    session.reset()
    session.step(torch.tensor(0))  # the agent acts on the 64x64 Crafter frame
    assert session.policy.last is not None and session.t == 1
    DiamondActorCritic(5, lstm_dim=8, channels=[4], down=[1]).save_pretrained(tmp_path / "five")
    with pytest.raises(SystemExit, match="chooses among 5 actions"):
        build_session(
            _parser().parse_args(["--env", "crafter", "--policy", str(tmp_path / "five")])
        )


def test_command_line_game_reaches_the_atari_env():
    pytest.importorskip("ale_py")
    session, _ = build_session(_parser().parse_args(["--env", "atari", "--game", "Breakout"]))
    assert session.env.rom == "breakout" and session.action_spec.n == 4
    assert session.reset().shape == (64, 64, 3)
