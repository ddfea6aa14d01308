"""HTTP/1.1 over raw sockets, for what HTTP clients hide: bodies sent byte by byte, requests on a
kept-alive connection at a chosen moment, the difference between an answer, a close and a reset."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def closes(self) -> bool:
        """The server announced it closes the connection after this answer."""
        return "close" in self.headers.get("connection", "").lower()


class Closed(Exception):
    """The server closed the connection (EOF, or a reset) before a whole answer."""


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to ``http://127.0.0.1:PORT``."""
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def request_head(path: str, content_length: int, url: str) -> bytes:
    """The request line and headers of a JSON POST (keep-alive, HTTP/1.1)."""
    host = url.removeprefix("http://")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


def post_json(sock: socket.socket, url: str, path: str, payload: Any) -> None:
    """Send one whole JSON POST."""
    body = json.dumps(payload).encode()
    sock.sendall(request_head(path, len(body), url) + body)


def read_response(sock: socket.socket) -> RawResponse:
    """One whole answer (Content-Length framed); Closed if the connection ends before it."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += recv_some(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += recv_some(sock)
    return RawResponse(int(lines[0].split()[1]), headers, rest[:length])


def recv_some(sock: socket.socket) -> bytes:
    try:
        chunk = sock.recv(65536)
    except ConnectionResetError as exc:
        raise Closed("connection reset") from exc
    if not chunk:
        raise Closed("connection closed (EOF)")
    return chunk


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed its end (EOF or reset, nothing more to read)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
