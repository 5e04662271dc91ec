"""Loopback helpers shared by the tests that start real servers (mlflow server, ray start)."""
import socket


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
