"""A real HTTP receiver for webhook tests: a threaded `http.server` on 127.0.0.1 that verifies signatures the way
docs/webhooks.md tells integrators to, remembers `X-Webhook-Id`s to drop redeliveries, and answers with scripted
status codes. `hold()` keeps the next request open until `release()` (to kill a worker mid-delivery)."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from security.webhook_signature import verify_signature


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    status: int

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)  # X-Webhook-Ids acted on, once each
    duplicates: list[str] = field(default_factory=list)
    url: str = ""
    arrived: threading.Condition = field(default_factory=threading.Condition)
    _held: threading.Event | None = None
    _hold_next: bool = False

    def hold(self) -> None:
        self._hold_next = True
        self._held = threading.Event()

    def release(self) -> None:
        if self._held is not None:
            self._held.set()

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, threading.Event | None]:
        signature_ok = verify_signature(secret=self.secret, header=headers.get("X-Signature", ""), body=body)
        status = self.statuses.pop(0) if self.statuses else 200
        if not signature_ok:
            status = 401
        elif status < 300:
            webhook_id = headers.get("X-Webhook-Id", "")
            (self.duplicates if webhook_id in self.processed else self.processed).append(webhook_id)
        held = None
        if self._hold_next:
            self._hold_next = False
            held = self._held
        with self.arrived:
            self.requests.append(Received(headers, body, signature_ok, status))
            self.arrived.notify_all()
        return status, json.dumps({"ok": status < 300}).encode(), held


@contextmanager
def running_receiver(secret: str = "") -> Iterator[Receiver]:
    receiver = Receiver(secret=secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status, answer, held = receiver.handle(dict(self.headers.items()), body)
            if held is not None:
                held.wait(timeout=60)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the sender is gone (killed mid-request)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/desk"
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
