"""Who may use the play server: its own page, on the address it is bound to.

Browsers let any web page open a WebSocket to ``127.0.0.1`` (the same-origin rule does not
cover WebSockets), and a page that rebinds its own DNS name to ``127.0.0.1`` can read the
server's HTTP answers. So the server checks every request:

- ``Host`` must name the address the connection arrived on (and its port), or the ``host``
  the server was bound to; on loopback also ``localhost``, ``127.0.0.1`` and ``[::1]`` (a
  browser may use any of them); bound to a wildcard (``0.0.0.0``, ``::``) also this
  machine's name.
- ``Origin``, where sent, must be ``http://`` followed by such a ``Host``. Browsers send it
  on every WebSocket upgrade; an upgrade without one comes from a program, not a web page,
  and is accepted only on a server bound to loopback (any local program can reach it anyway).
- Bound to any other address, the server also requires a random token in the query string
  (``?token=...``) of every request: the URL ``wmkit play --allow-remote`` prints carries it,
  and the page passes it on to its own requests.

Refused requests get a 403 with the reason.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

__all__ = ["AccessPolicy", "is_loopback", "page_url", "split_host"]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?")


def _canonical(name: str) -> str:
    """A host name or IP address as compared: lower case, no brackets, IPv4-mapped IPv6 as
    IPv4, IPv6 in its short form."""
    name = name.strip("[]").lower()
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return name.rstrip(".")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or IP address) is this machine's loopback interface."""
    name = _canonical(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` or ``[ipv6][:port]`` (a ``Host`` header) → ``(name, port)``, the name
    canonical and the port ``None`` where absent; ``None`` when ``value`` is not of that form."""
    match = _HOST_RE.fullmatch(value)
    if match is None:
        return None
    return _canonical(match[1]), int(match[2]) if match[2] else None


def page_url(host: str, port: int, token: str | None = None) -> str:
    """The URL of the page of a server bound to ``host:port`` (this machine's name for a
    wildcard host), with the token where one is required."""
    name = socket.gethostname() if _canonical(host) in _WILDCARDS else host
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"http://{name}:{port}/" + (f"?token={token}" if token else "")


class AccessPolicy:
    """The checks of the module docstring for a server bound to ``host``.

    Args:
        host: the address the server is bound to, as given to ``web.run_app``.
        token: the token every request must carry as ``?token=``; required when ``host``
            is not loopback (``secrets.token_urlsafe`` makes a good one).
    """

    def __init__(self, host: str = "127.0.0.1", token: str | None = None) -> None:
        self.loopback = is_loopback(host)
        if not self.loopback and not token:
            raise ValueError(
                f"host {host!r} is not a loopback address: serving it needs a token, so that "
                "only people given the URL can drive the model"
            )
        self.token = token
        self.names = {_canonical(host)} - _WILDCARDS
        if _canonical(host) in _WILDCARDS:
            self.names.add(_canonical(socket.gethostname()))

    def _accepts(self, value: str, local: tuple[str, int]) -> bool:
        parsed = split_host(value)
        if parsed is None:
            return False
        name, port = parsed
        local_ip, local_port = local
        names = self.names | {local_ip}
        if is_loopback(local_ip):
            names |= _LOOPBACK_NAMES
        return name in names and (port or 80) == local_port

    def refusal(self, request: web.Request) -> str | None:
        """Why ``request`` is refused, or ``None`` when it may be served."""
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if not isinstance(sockname, tuple) or len(sockname) < 2:
            return "the server cannot tell which address this connection arrived on"
        local = (_canonical(str(sockname[0])), int(sockname[1]))
        host = request.headers.get(hdrs.HOST, "")
        if not self._accepts(host, local):
            return f"Host {host!r} is not this server's address"
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None:
            if not (origin.startswith("http://") and self._accepts(origin[7:], local)):
                return f"Origin {origin!r} is not this server's own page"
        elif request.headers.get(hdrs.UPGRADE, "").lower() == "websocket" and not self.loopback:
            return "a WebSocket needs an Origin header on a server that is not on loopback"
        if self.token is not None:
            given = request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return "missing or wrong token: open the URL that wmkit play printed"
        return None

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """aiohttp middleware that answers refused requests with 403 and the reason."""
        reason = self.refusal(request)
        if reason is not None:
            return web.Response(status=403, text=f"wmkit play: {reason}\n")
        return await handler(request)
