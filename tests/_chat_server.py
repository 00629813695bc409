"""A loopback OpenAI-compatible server for the `openai` family's tests: chat completions answered by a script or a
function of the request, ``/v1/models`` answered from a listing; every request recorded."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Reply = tuple[int, str, dict[str, str]]  # status, body, headers


def completion(text: str | None = "the cube moved", **message: Any) -> Reply:
    """A chat completion answering `text` (None: ``"content": null``); more fields of the message in `message`."""
    return (200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text, **message},
                                          "finish_reason": "stop"}],
                             "model": "served-model", "usage": {"prompt_tokens": 10, "completion_tokens": 3}}), {})


def images_of(body: dict[str, Any]) -> list[bytes]:
    """The decoded bytes of every image data URL in a chat-completions request body."""
    urls = [p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
            for p in m["content"] if p.get("type") == "image_url"]
    return [base64.b64decode(u.split(",", 1)[1]) for u in urls]


class ChatServer:
    """Answers ``POST .../chat/completions`` with `reply(body, n)` (n: the request's number, from 1) or with a script
    (a list of replies, the last one repeated), ``GET .../models`` with `models` (None: 404)."""

    def __init__(self, reply: list[Reply] | Callable[[dict[str, Any], int], Reply],
                 models: list[dict[str, Any]] | None = None, host: str = "127.0.0.1"):
        self.reply, self.models = reply, models
        self.times: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.gets: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status: int, text: str, headers: dict[str, str]) -> None:
                data = text.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                outer.gets.append(self.path)
                if outer.models is None or not self.path.rstrip("/").endswith("/models"):
                    self._send(404, '{"detail": "Not Found"}', {"Content-Type": "application/json"})
                else:
                    self._send(200, json.dumps({"object": "list", "data": outer.models}),
                               {"Content-Type": "application/json"})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                with outer.lock:
                    outer.times.append(time.monotonic())
                    outer.headers.append(dict(self.headers))
                    outer.bodies.append(body)
                    outer.raw.append(raw)
                    n = len(outer.times)
                if callable(outer.reply):
                    status, text, headers = outer.reply(body, n)
                else:
                    status, text, headers = outer.reply[min(n, len(outer.reply)) - 1]
                self._send(status, text, headers)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that gave up mid-answer (the tests' point, often): no traceback on stderr

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> "ChatServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

