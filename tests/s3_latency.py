"""A latency-injecting HTTP proxy on loopback, in front of the local S3 server: each request waits
`delay_ms` before it is forwarded, as on a real object store. Counts requests (by method) and the
most in flight at once. Real server, real pyarrow S3 client; used by tests and benchmarks alike.
`ProxyProcess` runs it in a process of its own (`python tests/s3_latency.py UPSTREAM DELAY_MS`), so
that a benchmark's reader does not share its interpreter lock with the proxy's threads."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}
CONTROL = "/__proxy__/"  # the proxy's own paths (no S3 bucket can be named so)


def _body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request's body, whole (by Content-Length, or chunked)."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline().strip():  # trailers, then the blank line
            pass
        return b"".join(parts)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else None


class LatencyProxy:
    """`with LatencyProxy("127.0.0.1:PORT", delay_ms=30) as proxy:` then talk to `proxy.address`.
    `reset()` zeroes the counters; the server thread stops when the block ends."""

    def __init__(self, upstream: str, delay_ms: float = 0.0, max_threads: int = 256):
        self.upstream, self.delay = upstream, delay_ms / 1000
        self.lock, self.slots = threading.Lock(), threading.BoundedSemaphore(max_threads)
        self.in_flight = 0
        self.reset()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(self) -> None:
        """Zero the counts. Requests still in flight stay counted as such: a reply reaches the
        client before its handler's bookkeeping ends, so a reset can come in between."""
        with self.lock:
            self._reset()

    def _reset(self) -> None:
        self.requests: Counter[str] = Counter()
        self.most_in_flight = self.in_flight

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def __enter__(self) -> LatencyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.startswith(CONTROL):
            self._control(handler)
            return
        with self.lock:
            self.requests[handler.command] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            with self.slots:
                time.sleep(self.delay)
                self._relay(handler)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _control(self, handler: BaseHTTPRequestHandler) -> None:
        """The proxy's own paths, answered here and not counted: counts, and reset."""
        with self.lock:
            if handler.path == CONTROL + "reset":
                self._reset()
            body = json.dumps({"requests": self.requests, "most_in_flight": self.most_in_flight})
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body.encode())

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        body = _body(handler)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP | {"expect"}}
        chunked = "chunked" in handler.headers.get("Transfer-Encoding", "").lower()
        if chunked:  # forwarded as it came (S3's aws-chunked uploads rely on it)
            headers["Transfer-Encoding"] = "chunked"
        elif body is not None:
            headers["Content-Length"] = str(len(body))
        # One upstream connection per client connection, kept open as the client keeps its own:
        # a new one per request cost the server a thread and a handshake each time.
        upstream = getattr(handler, "upstream", None)
        for attempt in (1, 2):
            if upstream is None:
                host, port = self.upstream.split(":")
                upstream = handler.upstream = http.client.HTTPConnection(
                    host, int(port), timeout=60
                )
            try:
                upstream.request(
                    handler.command, handler.path, body=[body] if chunked else body,
                    headers=headers, encode_chunked=chunked,
                )  # fmt: skip
                reply = upstream.getresponse()
                data = reply.read()
                if reply.will_close:
                    upstream.close()
                    handler.upstream = None
                break
            except (http.client.HTTPException, ConnectionError):
                upstream.close()
                upstream = handler.upstream = None
                if attempt == 2:
                    raise
        handler.send_response(reply.status, reply.reason)
        for key, value in reply.getheaders():
            if key.lower() not in HOP and key.lower() != "content-length":
                handler.send_header(key, value)
        size = reply.getheader("Content-Length") if handler.command == "HEAD" else None
        handler.send_header("Content-Length", size or str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def finish(self) -> None:
                super().finish()
                if getattr(self, "upstream", None) is not None:
                    self.upstream.close()

            def __getattr__(self, name: str):
                if name.startswith("do_"):
                    return lambda: proxy._forward(self)
                raise AttributeError(name)

        return Handler


class ProxyProcess:
    """A LatencyProxy in a process of its own, with the same `address`, `reset()`, `requests`,
    `total` and `most_in_flight` (read over its control paths). Stopped by its pid on exit."""

    def __init__(self, upstream: str, delay_ms: float = 0.0):
        self.process = subprocess.Popen(
            [sys.executable, __file__, upstream, str(delay_ms)], stdout=subprocess.PIPE, text=True
        )
        self.address = self.process.stdout.readline().strip()
        if not self.address:
            self.process.wait(timeout=30)
            raise RuntimeError(f"the proxy did not start (exit {self.process.returncode})")

    def _ask(self, what: str) -> dict:
        host, port = self.address.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("GET", CONTROL + what)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def reset(self) -> None:
        self._ask("reset")

    @property
    def requests(self) -> Counter[str]:
        return Counter(self._ask("counts")["requests"])

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def most_in_flight(self) -> int:
        return self._ask("counts")["most_in_flight"]

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    with LatencyProxy(sys.argv[1], delay_ms=float(sys.argv[2])) as proxy:
        print(proxy.address, flush=True)
        proxy.thread.join()
