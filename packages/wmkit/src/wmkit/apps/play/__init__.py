"""`wmkit play`: drive any `WorldModel` (or the real environment) from a browser."""

from wmkit.apps.play.access import AccessPolicy
from wmkit.apps.play.bindings import Bindings, Component, InputState, default_bindings
from wmkit.apps.play.server import create_app, parse_message
from wmkit.apps.play.session import PlaySession

__all__ = [
    "AccessPolicy",
    "Bindings",
    "Component",
    "InputState",
    "PlaySession",
    "create_app",
    "default_bindings",
    "parse_message",
]
