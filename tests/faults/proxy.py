"""A loopback TCP proxy that cuts connections mid-request, and uploads driven through it.

Shared by the fault test ``tests/faults/test_network_cuts.py`` and the benchmark
``bench/upload.py``: real sockets, one thread per direction of each connection.

The proxy reads the HTTP/1.1 requests it forwards just enough to tell headers from bodies
(``Content-Length`` bodies; what requests and tuspy send), so cuts are planned in request-body
bytes and so land inside a chunk, and what a cut costs can be counted without the headers.
"""
from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_CONTENT_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_MAX_HEAD = 64 * 1024


class _BodyMeter:
    """Follows a stream of HTTP/1.1 requests; says which bytes of each read are body bytes."""

    def __init__(self) -> None:
        self._head = b""
        self._body_left = 0

    def spans(self, data: bytes) -> list[tuple[int, int]]:
        """(start, end) ranges of ``data`` that are request body."""
        out: list[tuple[int, int]] = []
        pos = 0
        while pos < len(data):
            if self._body_left:
                end = min(len(data), pos + self._body_left)
                out.append((pos, end))
                self._body_left -= end - pos
                pos = end
                continue
            seen = len(self._head)
            self._head += data[pos:]
            blank = self._head.find(b"\r\n\r\n")
            if blank < 0:
                if len(self._head) > _MAX_HEAD:
                    raise ValueError("request headers too long for the proxy to follow")
                return out
            pos += blank + 4 - seen
            match = _CONTENT_LENGTH.search(self._head[:blank])
            self._body_left = int(match.group(1)) if match else 0
            self._head = b""
        return out


class _Link:
    """One proxied connection; ``reset()`` drops both sides with a TCP RST."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.cut = False
        self.meter = _BodyMeter()
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            if self.cut:
                return
            self.cut = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # SHUT_RD wakes the other pump's recv (a close alone would not) without sending a FIN;
            # the close then sends the RST once that recv has let go of the socket.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
            with contextlib.suppress(OSError):
                sock.close()


class CuttingProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_port``, counting bytes and cutting connections.

    ``plan(gaps)``: the next cut comes after ``gaps[0]`` more request-body bytes, the one after
    that ``gaps[1]`` body bytes later, and so on. A cut forwards the bytes up to that point, then
    resets both sides (SO_LINGER 0), as a dropped link does to an in-flight request.
    ``forwarded`` counts every byte sent to the server, ``body_forwarded`` the body bytes only.
    """

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self.forwarded = 0
        self.body_forwarded = 0
        self.cuts = 0
        self._gaps: list[int] = []
        self._next_cut: int | None = None
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def plan(self, gaps: list[int]) -> None:
        """Counters back to 0 and new cut points."""
        with self._lock:
            self.forwarded = self.body_forwarded = self.cuts = 0
            self._gaps = list(gaps)
            self._next_cut = self._gaps.pop(0) if self._gaps else None

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self.upstream_port))
            except OSError:
                client.close()
                continue
            conn = _Link(client, upstream)
            threading.Thread(target=self._to_server, args=(conn,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(conn,), daemon=True).start()

    def _cut_at(self, data: bytes, spans: list[tuple[int, int]]) -> int | None:
        """Where in ``data`` the planned cut falls (an index), counting its body bytes; None: no cut."""
        body = self.body_forwarded
        for start, end in spans:
            if self._next_cut is not None and body + (end - start) >= self._next_cut:
                return start + self._next_cut - body
            body += end - start
        return None

    def _to_server(self, conn: _Link) -> None:
        try:
            while True:
                data = conn.client.recv(1 << 16)
                if not data:
                    if not conn.cut:
                        conn.upstream.shutdown(socket.SHUT_WR)
                    return
                spans = conn.meter.spans(data)
                with self._lock:
                    cut = self._cut_at(data, spans)
                    if cut is not None:
                        data = data[:cut]
                        spans = [(s, min(e, cut)) for s, e in spans if s < cut]
                        self.cuts += 1
                        self._next_cut = self._next_cut + self._gaps.pop(0) if self._gaps else None
                    self.forwarded += len(data)
                    self.body_forwarded += sum(e - s for s, e in spans)
                if data:
                    conn.upstream.sendall(data)
                if cut is not None:
                    conn.reset()
                    return
        except OSError:
            conn.reset()

    def _to_client(self, conn: _Link) -> None:
        try:
            while True:
                data = conn.upstream.recv(1 << 16)
                if not data:
                    if not conn.cut:
                        conn.client.shutdown(socket.SHUT_WR)
                    return
                conn.client.sendall(data)
        except OSError:
            conn.reset()


# --- the station's uploader through the proxy ---------------------------------------------------

@dataclass
class CutUpload:
    """One segment uploaded through planned cuts."""

    forwarded: int  # bytes sent to the server for it, HTTP headers included
    body_forwarded: int  # request-body bytes sent to the server for it
    cuts: int
    retries: int
    # Per failed try: bytes forwarded that the server did not keep (headers included) ...
    lost_per_cut: list[int] = field(default_factory=list)
    # ... and the same counting request bodies only.
    lost_body_per_cut: list[int] = field(default_factory=list)


def upload_through_cuts(proxy: CuttingProxy, uploader: Any, journal: Any, attempt_id: str, name: str,
                        gaps: list[int], server_offset: Callable[[str | None], int], *,
                        retry_limit: int = 50, network_errors: tuple[type[BaseException], ...] = (OSError,)
                        ) -> CutUpload:
    """Upload journal row ``name`` with ``uploader`` (a ``SegmentUploader``) via ``proxy.url``.

    After each cut the upload is tried again with the journal row read afresh, as the station's
    upload thread does: the upload URL and offset are journaled. ``server_offset(url)`` asks the
    server directly (not through the proxy) how many bytes of an upload it holds.
    """
    def row():
        return next(s for s in journal.segments_of(attempt_id) if s.name == name)

    proxy.plan(gaps)
    report = CutUpload(forwarded=0, body_forwarded=0, cuts=0, retries=0)
    for _ in range(retry_limit):
        current = row()
        if current.status == "verified":
            break
        before_all, before_body = proxy.forwarded, proxy.body_forwarded
        before_offset = server_offset(current.upload_url)
        try:
            uploader.upload(proxy.url, current)
        except network_errors:
            report.retries += 1
            kept = max(server_offset(row().upload_url) - before_offset, 0)
            report.lost_per_cut.append(proxy.forwarded - before_all - kept)
            report.lost_body_per_cut.append(proxy.body_forwarded - before_body - kept)
    else:
        raise RuntimeError(f"{name} not verified after {retry_limit} tries")
    report.forwarded, report.body_forwarded, report.cuts = proxy.forwarded, proxy.body_forwarded, proxy.cuts
    return report
