"""Port checks for the lab: find a free port, and tell "in use" apart before a server starts.

A server that cannot bind often logs the problem and keeps running (named does),
so the lab checks first and says which port is taken instead of timing out.
"""

from __future__ import annotations

import socket
import time

__all__ = ["free_port", "port_is_free", "wait_port_free"]


def port_is_free(host: str, port: int, *, udp: bool = False) -> bool:
    """True when nothing listens on *host*:*port* (TCP, and UDP too when asked)."""
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                # a port in TIME_WAIT is free for a server that sets SO_REUSEADDR, as ours do
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = "127.0.0.1", *, udp: bool = False) -> int:
    """A port nothing listens on now (TCP, and UDP too when asked); racy, fine for a lab."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
        if port_is_free(host, port, udp=udp):
            return port
    raise RuntimeError(f"no free port found on {host}")


def wait_port_free(host: str, port: int, timeout: float = 5.0, *, udp: bool = False) -> bool:
    """Wait until *port* is free again (a stopped server's socket closes a moment later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_free(host, port, udp=udp):
            return True
        time.sleep(0.05)
    return port_is_free(host, port, udp=udp)
