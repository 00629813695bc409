"""`openai`: any OpenAI-compatible chat-completions server (vLLM, SGLang, ``transformers serve``, llama.cpp, hosted
APIs).

Config: ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``), ``model`` (the server's model id; it identifies the weights
in the run spec), ``api_key_env`` (default ``OPENAI_API_KEY``; the key is read from that environment variable at
request time and never written anywhere, run files record only the variable's name; null for a server without
keys), ``concurrency`` (requests in flight, default 8; give ``--batch-size`` at least as large), ``timeout_s``,
``max_retries`` (429, 5xx, time-outs, dropped connections and malformed answers are retried with exponential
backoff and full jitter, ``Retry-After`` honoured), ``max_tokens`` (48), ``temperature`` (0), ``seed`` (0),
``max_side`` (resize so the longer side is at most this many pixels; null: as stored), ``extra_body`` (more JSON
fields for the server). Images go as base64 PNG data URLs (re-encoded from the decoded pixels, so no metadata of
the file travels; zlib level 1, several times faster to encode than PIL's default level 6 for about a fifth more
bytes, and the same pixels), the images of a batch encoded on a thread pool.

In a run, every answer is appended to ``requests.jsonl`` in the run directory (`wal.RequestLog`), keyed by the
request's hash: a resumed run never asks a finished pair again. ``usage.json`` there sums the tokens.

>>> retry_delay(3, base=1.0, cap=60.0, retry_after=None, rng=random.Random(0)) <= 8.0
True
>>> retry_delay(0, base=1.0, cap=60.0, retry_after=12.0, rng=random.Random(0))
12.0
>>> parse_retry_after("7"), parse_retry_after("soon")
(7.0, None)
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import os
import random
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from idcbench.captioner import RunContext, TrainData
from idcbench.data import Pair, load_image
from idcbench.errors import UserError
from idcbench.models.vlm.base import PROMPT_DEFAULTS, PromptedCaptioner
from idcbench.models.vlm.wal import RequestLog, request_key, usage_of
from idcbench.spec import write_json_atomic

DEFAULTS: dict[str, Any] = {
    **PROMPT_DEFAULTS,
    "base_url": None, "model": None, "api_key_env": "OPENAI_API_KEY",
    "concurrency": 8, "timeout_s": 120.0, "max_retries": 5, "backoff_s": 1.0, "max_backoff_s": 60.0,
    "max_tokens": 48, "temperature": 0, "seed": 0, "max_side": None, "extra_body": {},
}
USAGE_FILE = "usage.json"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_delay(attempt: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before retry `attempt` (0-based): the server's ``Retry-After`` when it sent one, else full jitter,
    uniform in [0, min(cap, base * 2**attempt)]."""
    if retry_after is not None:
        return retry_after
    return rng.uniform(0.0, min(cap, base * 2.0 ** attempt))


def image_data_url(path: Path, max_side: int | None = None) -> str:
    """A base64 PNG data URL of the image at `path` (RGB), shrunk so that its longer side is at most `max_side`."""
    from PIL import Image

    img = load_image(path)
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class OpenAICompatible(PromptedCaptioner):
    """Any OpenAI-compatible chat-completions server (async, retried, resumable from a write-ahead log)."""

    name = "openai"
    family = "openai"
    config_defaults = DEFAULTS
    runtime_keys = frozenset({"concurrency", "timeout_s", "max_retries", "backoff_s", "max_backoff_s", "api_key_env"})

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        for key in ("concurrency", "max_tokens"):
            if int(self.config[key]) < 1:
                raise UserError(f"openai: {key}={self.config[key]}: must be at least 1")
        if int(self.config["max_retries"]) < 0 or float(self.config["timeout_s"]) <= 0:
            raise UserError("openai: max_retries must be 0 or more and timeout_s positive")
        self.log: RequestLog | None = None  # set by bind_run: the run's write-ahead log
        self.retries = 0
        self._urls: dict[Path, str] = {}  # data URLs of the batch being built and of the shots
        self._tls_context: ssl.SSLContext | None = None

    # ---------------------------------------------------------------------------------------------------- config
    def _endpoint(self) -> str:
        if not self.config.get("base_url") or not self.config.get("model"):
            raise UserError("openai: set the server and its model: --config base_url=http://HOST:PORT/v1 "
                            "--config model=MODEL_ID")
        return str(self.config["base_url"]).rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        name = self.config.get("api_key_env")
        if not name:
            return {}
        key = os.environ.get(str(name))
        if not key:
            raise UserError(f"openai: the environment variable {name} is not set; export {name}=<the API key of "
                            f"{self.config.get('base_url')}> (a server without keys: --config api_key_env=null)")
        return {"Authorization": f"Bearer {key}"}

    @classmethod
    def resolve_config(cls, config: dict[str, Any], data: TrainData) -> dict[str, Any]:
        out = super().resolve_config(config, data)
        probe = cls(out)
        probe._endpoint()
        probe._headers()  # a missing key fails before any work
        return out

    def bind_run(self, ctx: RunContext) -> None:
        super().bind_run(ctx)
        self.log = RequestLog(ctx.run_dir, ctx.part)

    # ---------------------------------------------------------------------------------------------------- answer
    def image_part(self, path: Path) -> dict[str, Any]:  # type: ignore[override]
        url = self._urls.get(path) or image_data_url(path, self.config["max_side"])
        return {"type": "image_url", "image_url": {"url": url}}

    def conversations(self, pairs: Sequence[Pair]) -> list[list[dict[str, Any]]]:
        # Encoding the PNGs is most of the client's own time; PIL releases the GIL while it encodes, so the images
        # of a batch are encoded in parallel first (the shots' once per run).
        shot_paths = {p for s in self.shots for p in (s.pair.before, s.pair.after)}
        todo = [p for p in {p for pair in pairs for p in (pair.before, pair.after)} | shot_paths if p not in self._urls]
        if todo:
            with ThreadPoolExecutor(min(8, os.cpu_count() or 1, len(todo))) as pool:
                self._urls.update(zip(todo, pool.map(lambda p: image_data_url(p, self.config["max_side"]), todo)))
        try:
            return super().conversations(pairs)
        finally:
            self._urls = {p: u for p, u in self._urls.items() if p in shot_paths}

    def request_body(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        c = self.config
        body = {"model": c["model"], "messages": messages, "max_tokens": int(c["max_tokens"]),
                "temperature": c["temperature"], "seed": c["seed"], **(c["extra_body"] or {})}
        return {k: v for k, v in body.items() if v is not None}

    def answer(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        url, headers = self._endpoint(), self._headers()
        bodies = [self.request_body(m) for m in conversations]
        keys = [request_key(b) for b in bodies]
        log = self.log
        todo = [(k, b) for k, b in dict(zip(keys, bodies)).items() if log is None or k not in log]
        answers = asyncio.run(self._ask_all(url, headers, todo)) if todo else {}
        if log is not None:
            answers.update({k: log.get(k) for k in keys if k in log and k not in answers})
            self._write_usage(log.run_dir)
        return [answers[k].get("content") or "" for k in keys]

    def _write_usage(self, run_dir: Path) -> None:
        c = self.config
        write_json_atomic(run_dir / USAGE_FILE, {
            "base_url": c["base_url"], "model": c["model"], "api_key_env": c["api_key_env"],
            **usage_of(run_dir), "retries_this_process": self.retries,
        })

    def _tls(self) -> ssl.SSLContext:
        # Made once per model, not per batch: loading the CA bundle costs tens of milliseconds each time.
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context()
        return self._tls_context

    async def _ask_all(self, url: str, headers: dict[str, str],
                       todo: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        import httpx2

        limit = int(self.config["concurrency"])
        gate = asyncio.Semaphore(limit)
        timeout = httpx2.Timeout(float(self.config["timeout_s"]))
        answers: dict[str, dict[str, Any]] = {}
        async with httpx2.AsyncClient(timeout=timeout, limits=httpx2.Limits(max_connections=limit),
                                      verify=self._tls()) as client:
            async def one(key: str, body: dict[str, Any]) -> None:
                async with gate:
                    answers[key] = await self._ask(client, url, headers, key, body)

            tasks = [asyncio.ensure_future(one(k, b)) for k, b in todo]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        return answers

    async def _ask(self, client: Any, url: str, headers: dict[str, str], key: str,
                   body: dict[str, Any]) -> dict[str, Any]:
        rng = random.Random()  # jitter only spreads retries; it never changes an answer
        retries = int(self.config["max_retries"])
        for attempt in range(retries + 1):
            try:
                record = await self._post(client, url, headers, body)
            except _Retry as r:
                if attempt == retries:
                    raise UserError(f"openai: {url}: {r.reason} (gave up after {retries} retries); check that the "
                                    "server is up and base_url is right, or raise max_retries / timeout_s") from None
                self.retries += 1
                await asyncio.sleep(retry_delay(attempt, base=float(self.config["backoff_s"]),
                                                cap=float(self.config["max_backoff_s"]), retry_after=r.retry_after,
                                                rng=rng))
                continue
            if self.log is not None:  # the fsync off the event loop: other requests go on meanwhile
                await asyncio.to_thread(self.log.append, key, record)
            return record
        raise AssertionError("unreachable")

    async def _post(self, client: Any, url: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        import httpx2

        try:
            response = await client.post(url, json=body, headers=headers)
        except httpx2.TimeoutException:
            raise _Retry(f"no answer within timeout_s={self.config['timeout_s']}") from None
        except httpx2.TransportError as e:
            raise _Retry(f"cannot reach the server ({type(e).__name__}: {e or 'connection failed'})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status} {response.reason_phrase}",
                         parse_retry_after(response.headers.get("retry-after")))
        if status != 200:
            detail = " ".join(response.text.split())[:200]
            hint = {401: "check the key in $" + str(self.config["api_key_env"]), 403: "check the key's permissions",
                    404: "check base_url and model"}.get(status, "check the request options (extra_body, model)")
            raise UserError(f"openai: {url} answered HTTP {status}: {detail}; {hint}")
        try:
            data = response.json()
            choice = data["choices"][0]
            content = choice["message"].get("content")
            if content is not None and not isinstance(content, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise _Retry(f"malformed answer, not chat-completions JSON ({type(e).__name__}: "
                         f"{' '.join(response.text.split())[:80]!r})") from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return {"content": content or "", "finish_reason": choice.get("finish_reason"),
                "model": data.get("model"), "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")}}
