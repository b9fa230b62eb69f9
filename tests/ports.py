"""Ports on 127.0.0.1 for tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now: for a server a test starts, or for one it wants not to answer."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


__all__ = ["free_port"]
