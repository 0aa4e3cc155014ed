"""The play server over a real WebSocket (aiohttp's test server on 127.0.0.1)."""

import asyncio
import io
import json
import threading
import time

import numpy as np
import pytest
import torch
from aiohttp import WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from wmkit.apps.play.server import MAX_MESSAGE_BYTES, ProtocolError, create_app, parse_message
from wmkit.apps.play.session import PlaySession
from wmkit.core import read_video


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


async def _next(ws, kind: str, timeout: float = 5.0):
    """Next message of a kind: "frame" (binary PNG) or a JSON "type"."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY and kind == "frame":
                return _decode(msg.data)
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data["type"] == kind:
                    return data
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None


def _square_x(frame: np.ndarray) -> int:
    return int(np.nonzero(frame[..., 0] > 100)[1].min())


def _run(coro_fn, world, context, tmp_path, session_kwargs=None, **kwargs):
    async def main():
        session = PlaySession(world, context=context, record_dir=tmp_path, **session_kwargs or {})
        app = create_app(session, fps=40, **kwargs)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await coro_fn(client)

    asyncio.run(main())


def test_parse_message_rejects_bad_input():
    assert parse_message('{"type": "input", "keys": ["a"], "mouse": [1, 2]}')["keys"] == ["a"]
    for bad, match in [
        ("nope", "not JSON"),
        ("[" * 2000, "nests too deeply"),
        ('{"":' * 1000, "nests too deeply"),
        ("[1, 2]", "JSON object"),
        ('{"type": "dance"}', "unknown message type"),
        ('{"type": "input", "keys": "a"}', "keys"),
        ('{"type": "input", "keys": ["' + "k" * 40 + '"]}', "keys"),
        ('{"type": "input", "mouse": [1]}', "mouse"),
        ('{"type": "pause", "paused": "yes"}', "boolean"),
        ('{"type": "source", "source": "dream"}', "model"),
        ('{"type": "input", "keys": []' + " " * MAX_MESSAGE_BYTES + "}", "longer than"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            parse_message(bad)


def test_frames_arrive_and_follow_the_action(world, context, tmp_path):
    async def play(client):
        config = await (await client.get("/config")).json()
        assert "ArrowRight: right" in config["help"]
        page = await (await client.get("/")).text()
        assert '<img id="screen"' in page
        ws = await client.ws_connect("/ws")
        first = await _next(ws, "frame")
        assert first.shape == (16, 16, 3)
        status = await _next(ws, "status")
        assert status["source"] == "model"
        x0 = _square_x(first)
        await ws.send_json({"type": "input", "keys": ["ArrowRight"], "mouse": [0, 0]})
        for _ in range(6):
            frame = await _next(ws, "frame")
        assert _square_x(frame) > x0
        await ws.send_json({"type": "input", "keys": [], "mouse": [0, 0]})
        status = await _next(ws, "status")
        assert status["t"] > 0 and status["fps"] > 0
        await ws.close()

    _run(play, world, context, tmp_path)


def test_malformed_messages_get_errors_and_play_goes_on(world, context, tmp_path):
    async def play(client):
        ws = await client.ws_connect("/ws")
        await _next(ws, "frame")
        for bad in ["{oops", '{"type": 3}', '{"type": "input", "keys": 7}', "x" * 5000]:
            await ws.send_str(bad)
            assert "message" in await _next(ws, "error")
        await ws.send_str("[" * 2000)  # deeper than the JSON decoder's recursion
        assert "nests too deeply" in (await _next(ws, "error"))["message"]
        await ws.send_bytes(b"\x00\x01")
        assert "binary" in (await _next(ws, "error"))["message"]
        assert (await _next(ws, "frame")) is not None  # still streaming
        await ws.send_str("y" * 100_000)  # beyond the transport limit: this connection ends
        assert (await _next(ws, "frame", timeout=10)) is None or ws.closed
        ws2 = await client.ws_connect("/ws")  # ... and the server still serves
        assert (await _next(ws2, "frame")) is not None
        await ws2.close()

    _run(play, world, context, tmp_path)


def test_one_client_at_a_time_pause_reset_record(world, context, tmp_path):
    async def play(client):
        ws = await client.ws_connect("/ws")
        await _next(ws, "frame")
        other = await client.ws_connect("/ws")
        assert "another client" in (await _next(other, "error"))["message"]
        await other.close()
        await ws.send_json({"type": "record", "on": True})
        await _next(ws, "frame")
        await _next(ws, "frame")
        await ws.send_json({"type": "record", "on": False})
        saved = await _next(ws, "saved")
        assert saved["path"].endswith(".mp4")
        await ws.send_json({"type": "pause", "paused": True})
        status = await _next(ws, "status")
        while not status["paused"]:
            status = await _next(ws, "status")
        t = status["t"]
        await asyncio.sleep(0.3)
        await ws.send_json({"type": "reset"})
        status = await _next(ws, "status")
        while status["t"] != 0:  # a status of a step already in flight may come first
            status = await _next(ws, "status")
        assert status["paused"] and t > 0
        await ws.send_json({"type": "source", "source": "env"})
        assert "source must be one of" in (await _next(ws, "error"))["message"]
        await ws.close()

    _run(play, world, context, tmp_path)
    assert list(tmp_path.glob("*.mp4"))


class _SlowWorld:
    """A world model whose every call takes ``delay`` seconds and counts the calls running."""

    def __init__(self, world, delay: float) -> None:
        self.world, self.delay, self.action_spec = world, delay, world.action_spec
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0
        self.stepping = threading.Event()

    def _call(self, fn, *args):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.delay)
            return fn(*args)
        finally:
            with self.lock:
                self.running -= 1

    def reset(self, context_frames, context_actions=None):
        return self._call(self.world.reset, context_frames, context_actions)

    def step(self, state, action):
        self.stepping.set()
        return self._call(self.world.step, state, action)


def test_the_next_client_waits_for_the_previous_clients_step(world, context, tmp_path):
    slow = _SlowWorld(world, delay=0.3)

    async def play(client):
        first = await client.ws_connect("/ws")
        await _next(first, "frame")
        slow.stepping.clear()
        assert await asyncio.to_thread(slow.stepping.wait, 5)  # a step is in flight ...
        await first.close()  # ... when the first client leaves
        for _ in range(200):  # the second one comes in as soon as the server lets it
            second = await client.ws_connect("/ws")
            msg = await second.receive(timeout=5)
            await second.close()
            if msg.type == WSMsgType.BINARY:
                break
            assert "another client" in json.loads(msg.data)["message"]
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the second client never got in")

    _run(play, slow, context, tmp_path)
    assert slow.calls >= 3 and slow.most == 1  # resets and steps, never two at once


async def _refused(client, path: str, **headers) -> str:
    """The reason of a 403 for a WebSocket upgrade of ``path`` with these headers."""
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect(path, headers=headers)
    assert refused.value.status == 403
    return refused.value.message


def test_other_origins_and_hosts_are_refused(world, context, tmp_path):
    async def play(client):
        port = client.port
        for origin in ["http://evil.example", f"http://127.0.0.1:{port + 1}", "null"]:
            await _refused(client, "/ws", Origin=origin)
        for host in ["evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}"]:
            reply = await client.get("/config", headers={"Host": host})
            assert reply.status == 403 and "Host" in await reply.text()
        for name in ["localhost", "127.0.0.1", "[::1]"]:  # loopback answers to each name
            reply = await client.get("/", headers={"Host": f"{name}:{port}"})
            assert reply.status == 200
        ws = await client.ws_connect("/ws", headers={"Origin": f"http://localhost:{port}"})
        assert (await _next(ws, "frame")) is not None
        await ws.close()

    _run(play, world, context, tmp_path)


def test_off_loopback_every_request_needs_the_token(world, context, tmp_path):
    with pytest.raises(ValueError, match="needs a token"):
        create_app(PlaySession(world, context=context), host="0.0.0.0")

    async def play(client):
        own = {"Origin": f"http://127.0.0.1:{client.port}"}
        for path in ["/", "/config", "/config?token=wrong"]:
            reply = await client.get(path)
            assert reply.status == 403 and "token" in await reply.text()
        assert (await client.get("/config?token=s3cret")).status == 200
        assert (await client.get("/?token=s3cret")).status == 200
        await _refused(client, "/ws", **own)
        await _refused(client, "/ws?token=s3cret")  # no Origin: only on loopback
        ws = await client.ws_connect("/ws?token=s3cret", headers=own)
        assert (await _next(ws, "frame")) is not None
        await ws.close()

    _run(play, world, context, tmp_path, host="0.0.0.0", token="s3cret")


def test_a_recording_stops_at_its_limit_and_play_goes_on(world, context, tmp_path):
    async def play(client):
        ws = await client.ws_connect("/ws")
        await _next(ws, "frame")
        await ws.send_json({"type": "record", "on": True})
        saved = await _next(ws, "saved")
        assert "stopped at its limit of 0.5 s (5 frames)" in saved["message"]
        status = await _next(ws, "status")
        while status["recording"]:  # a status sent before the recording stopped may come first
            status = await _next(ws, "status")
        t = status["t"]
        while status["t"] < t + 3:  # play goes on
            status = await _next(ws, "status")
        await ws.close()
        assert read_video(saved["path"])[0].shape[0] == 5

    _run(play, world, context, tmp_path, session_kwargs={"max_record_seconds": 0.5})


def test_status_shows_the_lag_and_latency_of_a_k_frame_latent_step_model(world, context, tmp_path):
    """A k = 4 latent-step model serves its frames 3 actions behind: the status says so and
    its latency adds 3 frame periods (at most 40 frames/s here: >= 25 ms each) to the step
    time; the scripted per-frame model's latency is its step time alone."""
    from wmkit.core.testing import ToyLatentStepWorldModel

    torch.manual_seed(0)
    latent = ToyLatentStepWorldModel(world.action_spec, frames_per_step=4, hidden=4).eval()

    def watch(k: int):
        async def play(client):
            config = await (await client.get("/config")).json()
            assert config["frames_per_step"] == k
            ws = await client.ws_connect("/ws")
            status = await _next(ws, "status")
            assert status["lag"] == 0 and status["latency_ms"] == status["step_ms"] == 0
            lags = []
            while len(lags) < 8:
                status = await _next(ws, "status")
                lags.append(status["lag"])
            await ws.close()
            if k == 1:
                assert set(lags) == {0} and status["latency_ms"] == status["step_ms"] > 0
            else:  # lag 1, 2, 3 while the first latent step fills, then k - 1
                assert lags[:3] == [1, 2, 3] and set(lags[3:]) == {3}
                assert status["step_ms"] > 0 and status["fps"] > 0
                assert status["latency_ms"] >= status["step_ms"] + 3 * 25 - 0.1

        return play

    _run(watch(4), latent, context, tmp_path)
    _run(watch(1), world, context, tmp_path)
