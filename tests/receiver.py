"""A real HTTP server in the test process that receives webhooks and answers as scripted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_verify() -> Callable[[str, str, bytes], bool]:
    """The README's signature check ("Verify before trusting a delivery"), run as printed, so
    the code receivers copy is the code the tests check."""
    section = README.read_text().split("Verify before trusting a delivery", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(code, f"{README}:verify", "exec"), scope)
    return scope["verify"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """Records every request; `script[path]` is a list of answers taken in turn (the last one
    repeats): a status, or ("sleep", seconds) to hold the request that long, then answer 200,
    or ("redirect", location), or ("trickle", seconds) to send `HTTP/1.1 200 OK` at once, then
    a header line every 0.2 s for that long before ending the headers."""

    def __init__(self):
        self.received: list[Received] = []
        self.script: dict[str, list] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends every ("sleep", ...) at once when set
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                    answers = receiver.script.get(self.path, [200])
                    answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if isinstance(answer, tuple) and answer[0] == "trickle":
                    self._trickle(answer[1])
                    return
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    receiver.release.wait(answer[1])
                    answer = 200
                if isinstance(answer, tuple) and answer[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", answer[1])
                else:
                    self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _trickle(self, seconds: float) -> None:
                self.close_connection = True
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline and not receiver.release.wait(0.2):
                        self.wfile.write(b"X-Trickle: 1\r\n")
                    self.wfile.write(b"Content-Length: 0\r\n\r\n")
                except OSError:  # the sender gave up and closed the connection
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [entry for entry in self.received if entry.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(found := self.at(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} request(s) to {path} after {timeout} s, {count} expected")
            time.sleep(0.02)
        return found
