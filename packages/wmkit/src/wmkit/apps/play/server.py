"""The play server: a page on 127.0.0.1 and a WebSocket that streams frames.

Only the server's own page may use it (``wmkit.apps.play.access``): requests must name the
bound address as ``Host``, WebSocket upgrades must come from the server's own origin, and a
server off loopback requires the token of its URL.

Protocol (JSON text messages, at most ``MAX_MESSAGE_BYTES``):

- client → server: ``{"type": "input", "keys": [...], "mouse": [dx, dy]}`` (keys held, in
  press order; mouse movement since the last message), ``{"type": "reset"}``,
  ``{"type": "pause", "paused": bool}``, ``{"type": "record", "on": bool}``,
  ``{"type": "source", "source": "model" | "env"}``, ``{"type": "driver", "driver": "person" |
  "agent"}`` (who acts when the session has a policy).
- server → client: each frame as a binary PNG message, then ``{"type": "status", ...}``
  (t, fps, reward, done, paused, recording, source, driver, and play's latency:
  ``lag`` frames the frame is behind the last action, mean ``step_ms``, ``latency_ms`` =
  lag × frame period + step time, :mod:`wmkit.apps.play.latency`); ``{"type": "saved", "path":
  ...}`` after a recording, with a ``"message"`` when it stopped at the session's
  ``max_record_seconds`` (play goes on); ``{"type": "error", "message": ...}`` for anything
  malformed. A bad message is answered, never fatal; one client plays at a time (a second one
  is told so and closed).

The game loop runs on the server at the target frame rate (DIAMOND's play loop): each tick
turns the latest input into an action with the bindings and steps the session in a worker
thread, so a slow model lowers the FPS shown instead of queueing input. Every model call
(reset, step, source switch) goes to one worker thread, so model calls never overlap: a
client that leaves while its step runs lets the next one in, whose first reset then waits for
that step to finish. Recordings are written on another thread, so play goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web
from PIL import Image

from wmkit.apps.play.access import AccessPolicy
from wmkit.apps.play.bindings import Bindings, InputState
from wmkit.apps.play.session import PlaySession

__all__ = ["MAX_MESSAGE_BYTES", "ProtocolError", "create_app", "encode_png", "parse_message"]

MAX_MESSAGE_BYTES = 4096
_MAX_KEYS = 16
_MAX_KEY_LEN = 24


class ProtocolError(ValueError):
    """A client message that does not follow the protocol."""


def parse_message(text: str) -> dict[str, Any]:
    """Validate one client message; raises ``ProtocolError`` saying what is wrong."""
    if len(text.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message longer than {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"message is not JSON: {e.msg}") from None
    except RecursionError:  # "[" * 2000 fits in the size limit and nests past the stack
        raise ProtocolError("message nests too deeply") from None
    except ValueError as e:  # any other refusal of the decoder
        raise ProtocolError(f"message is not JSON: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError('message must be a JSON object with a string "type"')
    kind = msg["type"]
    if kind == "input":
        keys, mouse = msg.get("keys", []), msg.get("mouse", [0, 0])
        if (
            not isinstance(keys, list)
            or len(keys) > _MAX_KEYS
            or not all(isinstance(k, str) and 0 < len(k) <= _MAX_KEY_LEN for k in keys)
        ):
            raise ProtocolError(f'"keys" must be a list of at most {_MAX_KEYS} short strings')
        if (
            not isinstance(mouse, list)
            or len(mouse) != 2
            or not all(isinstance(v, int | float) and abs(v) < 1e5 for v in mouse)
        ):
            raise ProtocolError('"mouse" must be [dx, dy] with finite numbers')
        return {"type": kind, "keys": keys, "mouse": (float(mouse[0]), float(mouse[1]))}
    if kind == "reset":
        return {"type": kind}
    if kind in ("pause", "record"):
        field = "paused" if kind == "pause" else "on"
        if not isinstance(msg.get(field), bool):
            raise ProtocolError(f'"{kind}" needs a boolean "{field}"')
        return {"type": kind, field: msg[field]}
    if kind == "source":
        if msg.get("source") not in ("model", "env"):
            raise ProtocolError('"source" must be "model" or "env"')
        return {"type": kind, "source": msg["source"]}
    if kind == "driver":
        if msg.get("driver") not in ("person", "agent"):
            raise ProtocolError('"driver" must be "person" or "agent"')
        return {"type": kind, "driver": msg["driver"]}
    raise ProtocolError(f"unknown message type {kind!r}")


def encode_png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class _Player:
    """One connected client: its input state, the loop and the session commands.

    ``worker`` is the server's one thread for model calls (see the module docstring).
    """

    def __init__(
        self, session: PlaySession, bindings: Bindings, fps: float, worker: ThreadPoolExecutor
    ) -> None:
        self.session, self.bindings, self.period = session, bindings, 1.0 / fps
        self.worker = worker
        self.input = InputState()
        self.paused = False
        self.ticks: deque[float] = deque(maxlen=30)
        self.saving: asyncio.Task | None = None

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a model call on the worker thread. Cancelling the wait leaves the call
        running there, and the next call queues behind it."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    async def save_recording(self, ws: web.WebSocketResponse, at_limit: bool = False) -> None:
        """Stop the recording, write it and tell the client where it went."""
        path = await asyncio.to_thread(self.session.stop_recording)
        if at_limit and path is None:  # the client stopped it meanwhile and was told
            return
        reply: dict[str, Any] = {"type": "saved", "path": str(path) if path else None}
        if at_limit:
            s = self.session
            reply["message"] = (
                f"recording stopped at its limit of {s.max_record_seconds:g} s "
                f"({s.max_record_frames} frames); saved {path}"
            )
        await ws.send_json(reply)

    def fps(self) -> float:
        if len(self.ticks) < 2:
            return 0.0
        return (len(self.ticks) - 1) / max(self.ticks[-1] - self.ticks[0], 1e-9)

    async def send_frame(self, ws: web.WebSocketResponse, frame: np.ndarray) -> None:
        await ws.send_bytes(encode_png(frame))
        await self.send_status(ws)

    async def send_status(self, ws: web.WebSocketResponse) -> None:
        s, fps = self.session, self.fps()
        period = 1.0 / fps if fps > 0 else self.period  # the target's until ticks are measured
        await ws.send_json({
            "type": "status", "t": s.t, "fps": round(fps, 2), "reward": s.last_reward,
            "paused": self.paused, "recording": s.recording is not None, "source": s.source,
            "done": s.done, "driver": s.driver, "lag": s.timing.lag,
            "step_ms": round(1000 * s.timing.mean, 2),
            "latency_ms": round(1000 * s.timing.latency(period), 2),
        })  # fmt: skip

    async def run_loop(self, ws: web.WebSocketResponse) -> None:
        next_tick = time.monotonic()
        while not ws.closed:
            next_tick += self.period
            if not self.paused:
                action = self.bindings.action(self.input)
                self.input.mouse = (0.0, 0.0)
                try:
                    frame = await self.call(self.session.step, action)
                except Exception as e:  # report it and pause; the server keeps serving
                    self.paused = True
                    await ws.send_json({"type": "error", "message": f"step failed: {e}"})
                    continue
                self.ticks.append(time.monotonic())
                await self.send_frame(ws, frame)
                if self.session.recording_full and (self.saving is None or self.saving.done()):
                    self.saving = asyncio.create_task(self.save_recording(ws, at_limit=True))
            delay = next_tick - time.monotonic()
            if delay < 0:
                next_tick = time.monotonic()
            await asyncio.sleep(max(delay, 0.0))

    async def handle(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "input":
            dx, dy = msg["mouse"]
            mx, my = self.input.mouse
            self.input = InputState(keys=msg["keys"], mouse=(mx + dx, my + dy))
        elif kind == "pause":
            self.paused = msg["paused"]
            await self.send_status(ws)
        elif kind == "reset":
            await self.send_frame(ws, await self.call(self.session.reset))
        elif kind == "driver":
            self.session.set_driver(msg["driver"])
            await self.send_status(ws)
        elif kind == "source":
            await self.send_frame(ws, await self.call(self.session.set_source, msg["source"]))
        elif kind == "record":
            if msg["on"]:
                self.session.start_recording()
            else:
                await self.save_recording(ws)


async def _read_messages(ws: web.WebSocketResponse, player: _Player) -> None:
    """Hand each text message of the client to ``player`` until the socket closes; a bad
    message or a binary one is answered with an error and the session goes on."""
    async for raw in ws:
        if raw.type == WSMsgType.TEXT:
            try:
                await player.handle(ws, parse_message(raw.data))
            except (ProtocolError, ValueError) as e:
                await ws.send_json({"type": "error", "message": str(e)})
        elif raw.type == WSMsgType.BINARY:
            reply = {"type": "error", "message": "binary messages are not accepted"}
            await ws.send_json(reply)
        elif raw.type == WSMsgType.ERROR:
            break


async def _wind_down(
    player: _Player,
    session: PlaySession,
    loop_task: asyncio.Task | None,
    busy: asyncio.Lock,
) -> None:
    """End a client's session: stop its frame loop, wait for a clip being saved, stop a
    recording, and free the one-client ``busy`` lock for the next client."""
    if loop_task is not None:
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError, RuntimeError):
            await loop_task
    try:
        if player.saving is not None:
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await player.saving
        if session.recording is not None:
            await asyncio.to_thread(session.stop_recording)
    finally:
        busy.release()


def create_app(
    session: PlaySession,
    bindings: Bindings | None = None,
    fps: float = 15.0,
    title: str = "",
    host: str = "127.0.0.1",
    token: str | None = None,
) -> web.Application:
    """The aiohttp application: ``/`` (the page), ``/config`` (bindings, sources, the world
    model's frames per latent step) and ``/ws``.

    ``host`` is the address the application will be served on and ``token`` the one every
    request must carry (required off loopback); see ``wmkit.apps.play.access``.
    """
    from wmkit.apps.play.bindings import default_bindings

    bindings = bindings or default_bindings(session.action_spec)
    session.action_spec.check_compatible(bindings.spec, "bindings' action spec")
    app = web.Application(middlewares=[AccessPolicy(host, token).middleware])
    busy = asyncio.Lock()  # one client at a time
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wmkit-play")

    async def stop_worker(app: web.Application) -> None:
        await asyncio.to_thread(worker.shutdown, wait=True, cancel_futures=True)

    app.on_cleanup.append(stop_worker)

    async def index(request: web.Request) -> web.Response:
        html = resources.files("wmkit.apps.play").joinpath("static/index.html").read_text()
        return web.Response(text=html, content_type="text/html")

    async def config(request: web.Request) -> web.Response:
        return web.json_response({
            "title": title, "fps": fps, "sources": session.sources, "source": session.source,
            "drivers": session.drivers, "driver": session.driver,
            "frames_per_step": session.frames_per_step,
            "bindings": bindings.to_dict(), "help": bindings.describe(),
            "action_spec": session.action_spec.to_dict(),
        })  # fmt: skip

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024, heartbeat=30)
        await ws.prepare(request)
        if busy.locked():
            await ws.send_json({"type": "error", "message": "another client is playing"})
            await ws.close()
            return ws
        await busy.acquire()
        player = _Player(session, bindings, fps, worker)
        loop_task: asyncio.Task | None = None
        try:
            await player.send_frame(ws, await player.call(session.reset))
            loop_task = asyncio.create_task(player.run_loop(ws))
            await _read_messages(ws, player)
        finally:
            await _wind_down(player, session, loop_task, busy)
        return ws

    app.router.add_get("/", index)
    app.router.add_get("/config", config)
    app.router.add_get("/ws", websocket)
    return app
