"""The single-host upgrade drill's client (test_drill_upgrade.Load.get) against a real HTTP server on
loopback that closes a kept-alive connection without answering, as a stopping nginx does: the GET is
sent once more on a new connection and counted as resent; the same close on a new connection is a
failure. No stack needed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from infra.test_drill_upgrade import Load, Phase

pytestmark = pytest.mark.unit

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


def read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A server whose every connection answers its first request and closes at its second, unanswered;
    yields its URL and a log of what it did."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    log: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            with conn:
                if read_request(conn):
                    conn.sendall(ANSWER)
                    log.append("answered")
                if read_request(conn):
                    log.append("closed unanswered")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", log
    stop.set()
    listener.close()
    thread.join(10)


def test_a_get_crossing_the_close_of_its_kept_connection_is_resent(server: tuple[str, list[str]]) -> None:
    url, log = server
    phase = Phase()
    with httpx.Client(base_url=url, timeout=5) as http:
        assert Load.get(http, "/a", phase, reused=False) is True
        # The kept connection: the server closes it unanswered; the resend opens a new one.
        assert Load.get(http, "/a", phase, reused=True) is True
    assert (phase.resent, phase.failed) == (1, [])
    assert log == ["answered", "closed unanswered", "answered"]


def test_the_same_close_on_a_new_connection_is_a_failure(server: tuple[str, list[str]]) -> None:
    url, _ = server
    phase = Phase()
    with httpx.Client(base_url=url, timeout=5) as http:
        assert Load.get(http, "/a", phase, reused=False) is True
        # Told the connection is new: no resend, the close is a failure.
        assert Load.get(http, "/a", phase, reused=False) is False
    assert phase.resent == 0
    assert phase.failed == ["/a: RemoteProtocolError"]
