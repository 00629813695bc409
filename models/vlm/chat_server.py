"""`openai`: any OpenAI-compatible chat-completions server (vLLM, SGLang, ``transformers serve``, llama.cpp, hosted
APIs).

Config: ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``; how to reach the server, recorded but not part of the run's
identity), ``model`` (the server's model id: the weights, or a LoRA adapter the server serves under that name),
``api_key_env`` (default ``OPENAI_API_KEY``; the key is read from that environment variable at request time and never
written anywhere, run files record only the variable's name; null for a server without keys), ``concurrency``
(requests in flight, default 8; give ``--batch-size`` a few times as large, so that the next requests are on their
way while a batch's last answers come in), ``timeout_s``, ``max_retries`` (429, 5xx, time-outs, dropped connections
and empty answers are retried with exponential backoff and full jitter, ``Retry-After`` honoured, one line per retry;
an answer that asking again would not change, such as an HTML page or a 4xx, ends the run at once),
``max_tokens`` (null: the benchmark protocol's answer length, 48 for one sentence), ``temperature`` (0), ``seed`` (0), ``max_side`` (resize so the longer side is at most this many
pixels; null: as stored), ``extra_body`` (more JSON fields for the server).

The run's identity is the model id and what the server's ``/v1/models`` reports for it (`resolve_config` pins it as
``served_model``: ``root``, the weights' or the adapter's path, and ``parent``, an adapter's base model), with the
prompt and the decoding settings; ``base_url`` and the client's settings are recorded in ``run_spec.json``'s
``runtime_config`` only, so the same server under another address is the same run and a moved server resumes it.

Images go as data URLs, the file's own bytes with its metadata stripped when the server decodes the same pixels from
them, a PNG of the decoded pixels otherwise (`data_url`); a request's images are read and encoded on a thread pool
while other requests are in flight, and one event loop and its connections serve every batch (keep-alive; a proxy
from the environment is used as httpx would).

In a run, every answer is logged to ``requests.jsonl`` in the run directory (`wal.RequestLog`), keyed by the
request's hash: a resumed run never asks a finished pair again. A pair whose answer stayed empty after the retries is
logged as a failure, gets the empty caption with the reason (`Caption.failed`), and is asked again when the run is
repeated. ``usage.json`` there sums the requests, the failures and the tokens.

>>> retry_delay(3, base=1.0, cap=60.0, retry_after=None, rng=random.Random(0)) <= 8.0
True
>>> retry_delay(0, base=1.0, cap=60.0, retry_after=12.0, rng=random.Random(0))
12.0
>>> parse_retry_after("7"), parse_retry_after("soon")
(7.0, None)
>>> image_limit('{"message": "At most 1 image(s) may be provided in one request."}')
1
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import hashlib
import json
import os
import random
import re
import ssl
import sys
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from idcbench.captioner import Caption, RunContext, TrainData
from idcbench.data import Pair
from idcbench.errors import UserError
from idcbench.models.vlm.base import PROMPT_DEFAULTS, PromptedCaptioner
from idcbench.models.vlm.data_url import data_url_bytes
from idcbench.models.vlm.wal import RequestLog
from idcbench.spec import canonical_json
from idcbench.files import atomic_target

DEFAULTS: dict[str, Any] = {
    **PROMPT_DEFAULTS,
    "base_url": None, "model": None, "api_key_env": "OPENAI_API_KEY",
    "served_model": None,  # pinned by resolve_config from /v1/models (hashed; set it by hand only to reproduce a run)
    "concurrency": 8, "timeout_s": 120.0, "max_retries": 5, "backoff_s": 1.0, "max_backoff_s": 60.0,
    "max_tokens": None, "temperature": 0, "seed": 0, "max_side": None, "extra_body": {},
}
USAGE_FILE = "usage.json"
SERVED_FIELDS = ("root", "parent")  # what /v1/models says of the weights behind a model id (vLLM, SGLang)
_IMAGE_LIMIT = re.compile(r"At most (\d+) image\(s\) may be provided in one (?:request|prompt)")
_SLOT = f"@@idcbench-image-{os.urandom(8).hex()}@@"  # where an image's data URL goes in a request's JSON
_SLOTS = re.compile(re.escape(_SLOT.encode()) + rb"(\d+)" + re.escape(_SLOT.encode()))


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (``<scheme>_proxy`` or ``all_proxy``, unless ``no_proxy`` covers
    its host), as httpx's client would use it."""
    import urllib.request

    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


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


def image_limit(text: str) -> int | None:
    """The images per request a server allows, from vLLM's refusal ("At most N image(s) may be provided in one
    request/prompt"); None for any other text."""
    m = _IMAGE_LIMIT.search(text)
    return int(m.group(1)) if m else None


def error_detail(text: str, limit: int = 300) -> str:
    """The message of an error body: ``error.message``, ``message`` or ``detail`` of a JSON body, else the text
    with its whitespace collapsed, cut at `limit` characters.

    >>> error_detail('{"error": {"message": "CUDA out of memory", "code": 500}}'), error_detail("<h1>Bad\\n gateway</h1>")
    ('CUDA out of memory', '<h1>Bad gateway</h1>')
    """
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        for found in (err.get("message") if isinstance(err, dict) else err, data.get("message"), data.get("detail")):
            if isinstance(found, str) and found.strip():
                text = found
                break
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


class _Retry(Exception):
    """A failed attempt worth another: why, what to do when retries run out, the server's Retry-After, and for an
    empty answer (`empty`) what it cost."""

    def __init__(self, reason: str, hint: str, retry_after: float | None = None, *, empty: bool = False,
                 usage: dict[str, int] | None = None):
        super().__init__(reason)
        self.reason, self.hint, self.retry_after, self.empty, self.usage = reason, hint, retry_after, empty, usage


@dataclass(frozen=True)
class _Image:
    """An image part's URL until the request is encoded (on the thread pool, while other requests are in flight)."""

    path: Path


class _Connection:
    """The event loop, HTTP connections and thread pool a model keeps across batches (keep-alive); closed when the
    model is collected or the interpreter exits.

    One httpx transport per request in flight, each with one connection, called directly: httpcore's pool looks at
    every connection it holds for each request it places (a poll and a getpeername each), and httpx's client layers
    (auth, redirects, cookies) cost a third of a request on a fast server, for nothing this client uses."""

    def __init__(self, workers: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="idcbench-openai")
        self.transports: list[Any] = []
        self.free: asyncio.Queue[Any] | None = None  # the transports not in use: at most `concurrency` requests

    def run(self, coro: Any) -> Any:
        task = self.loop.create_task(coro)
        try:
            return self.loop.run_until_complete(task)
        except BaseException:  # e.g. Ctrl-C while requests are in flight: cancel them, keep what is logged
            task.cancel()
            try:
                self.loop.run_until_complete(task)
            except BaseException:
                pass
            raise

    def close(self) -> None:
        if self.transports and not self.loop.is_closed():
            try:
                self.loop.run_until_complete(asyncio.gather(*(t.aclose() for t in self.transports)))
            except Exception:
                pass
        self.pool.shutdown(wait=False)
        if not self.loop.is_closed():
            self.loop.close()


class OpenAICompatible(PromptedCaptioner):
    """Any OpenAI-compatible chat-completions server (async, retried, resumable from a write-ahead log)."""

    name = "openai"
    family = "openai"
    config_defaults = DEFAULTS
    runtime_keys = frozenset({"base_url", "api_key_env", "concurrency", "timeout_s", "max_retries", "backoff_s",
                              "max_backoff_s"})

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        for key in ("concurrency", "max_tokens"):
            if self.config[key] is None:  # max_tokens: pinned from the protocol by resolve_config
                continue
            if int(self.config[key]) < 1:
                raise UserError(f"openai: {key}={self.config[key]}: must be at least 1")
        if int(self.config["max_retries"]) < 0 or float(self.config["timeout_s"]) <= 0:
            raise UserError("openai: max_retries must be 0 or more and timeout_s positive")
        self.log: RequestLog | None = None  # set by bind_run: the run's write-ahead log
        self.retries = 0
        self._rng = random.Random()  # jitter only spreads retries; it never changes an answer
        self._failures: list[str | None] = []  # per pair of the last batch: why it has no answer
        self._said: set[tuple[str, int]] = set()  # (reason, attempt) of the retry lines printed in this batch
        self._tls_context: ssl.SSLContext | None = None
        self._connection: _Connection | None = None

    # ---------------------------------------------------------------------------------------------------- config
    def _base_url(self) -> str:
        base, model = self.config.get("base_url"), self.config.get("model")
        if not base or not model:
            raise UserError("openai: set the server and its model: --config base_url=http://HOST:PORT/v1 "
                            "--config model=MODEL_ID")
        parts = urlsplit(str(base))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UserError(f"openai: base_url={base!r} is not an http(s) URL; write it with its scheme, e.g. "
                            f"--config base_url=http://{str(base).split('://')[-1].lstrip('/')}")
        return str(base).rstrip("/")

    def _endpoint(self) -> str:
        return self._base_url() + "/chat/completions"

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
        served = probe.served_model()  # a bad base_url, a missing key or a server that is down fail here
        pinned = out.get("served_model")
        if pinned is not None and pinned != served:
            raise UserError(f"openai: served_model={json.dumps(pinned)} is pinned but {probe._base_url()}/models "
                            f"reports {json.dumps(served)} for model {out['model']}; serve those weights or drop "
                            "served_model")
        out["served_model"] = served
        return out

    def served_model(self) -> dict[str, str] | None:
        """What the server's ``/v1/models`` says of the weights behind ``model`` (``root``, ``parent``); None when it
        does not list the model or says nothing of them. A server that cannot be reached is a `UserError`."""
        import httpx2

        url = self._base_url() + "/models"
        try:
            response = httpx2.get(url, headers=self._headers(), timeout=min(float(self.config["timeout_s"]), 30.0),
                                  verify=self._tls())
        except httpx2.TimeoutException:
            raise UserError(f"openai: {url}: no answer within {min(float(self.config['timeout_s']), 30.0):g} s; "
                            "check that the server is up (README: Serve a model)") from None
        except httpx2.TransportError as e:
            raise UserError(f"openai: cannot reach the server at {self._base_url()} ({type(e).__name__}: "
                            f"{e or 'connection failed'}); start it (README: Serve a model) or fix base_url") from None
        if response.status_code in (401, 403):
            raise UserError(f"openai: {url} answered HTTP {response.status_code}: {error_detail(response.text)}; "
                            f"check the key in ${self.config.get('api_key_env')}")
        try:
            entries = response.json()["data"] if response.status_code == 200 else []
        except (ValueError, KeyError, TypeError):
            entries = []  # a server without a model list: the model id alone names the weights
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") == self.config["model"]:
                found = {k: str(entry[k]) for k in SERVED_FIELDS if entry.get(k)}
                return found or None
        return None

    def bind_run(self, ctx: RunContext) -> None:
        super().bind_run(ctx)
        self.log = RequestLog(ctx.run_dir, ctx.part)

    # ---------------------------------------------------------------------------------------------------- answer
    def image_part(self, path: Path) -> dict[str, Any]:  # type: ignore[override]
        return {"type": "image_url", "image_url": {"url": _Image(Path(path))}}

    def _data_url(self, path: Path) -> bytes:
        stat = path.stat() if path.exists() else None  # a missing file: data_url_bytes says so
        if stat is None:
            return data_url_bytes(path, self.config["max_side"])
        return _recent_data_url(path, stat.st_mtime_ns, stat.st_size, self.config["max_side"])

    def request_body(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        c = self.config
        from idcbench.protocol import COCO

        length = c["max_tokens"] or COCO.decoding["max_new_tokens"]  # unpinned (`caption`): one sentence's
        body = {"model": c["model"], "messages": messages, "max_tokens": int(length),
                "temperature": c["temperature"], "seed": c["seed"], **(c["extra_body"] or {})}
        return {k: v for k, v in body.items() if v is not None}

    def _encode(self, messages: list[dict[str, Any]]) -> tuple[bytes, str]:
        """The request's bytes, ``canonical_json(body)`` with the images' data URLs in it, and its key, their sha256
        (`wal.request_key` of that body). On a worker thread: reading and encoding the images is most of it.

        The data URLs go in after the JSON is written (they need no escaping): the JSON encoder never scans them."""
        urls: list[bytes] = []

        def slot(part: dict[str, Any]) -> dict[str, Any]:
            image = part.get("image_url", {}).get("url") if part.get("type") == "image_url" else None
            if not isinstance(image, _Image):
                return part
            urls.append(self._data_url(image.path))
            return {"type": "image_url", "image_url": {"url": f"{_SLOT}{len(urls) - 1}{_SLOT}"}}

        slotted = [{**m, "content": [slot(p) for p in m["content"]]} if isinstance(m["content"], list) else m
                   for m in messages]
        pieces = _SLOTS.split(canonical_json(self.request_body(slotted)).encode("utf-8"))
        pieces[1::2] = [urls[int(i)] for i in pieces[1::2]]
        data = b"".join(pieces)
        return data, hashlib.sha256(data).hexdigest()

    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        captions = super().caption(pairs)
        return [Caption(c, raw=getattr(c, "raw", c), failed=why) if why else c
                for c, why in zip(captions, self._failures)]

    def answer(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        url, headers = self._endpoint(), self._headers()
        self._said.clear()
        try:
            records = self._connect().run(self._answer_all(url, headers, conversations))
        finally:
            if self.log is not None:
                self._write_usage()
        self._failures = [r.get("failed") for r in records]
        if self.log is None and any(self._failures):  # `idcbench caption`: no run to record it in
            raise UserError(f"openai: {url}: {next(f for f in self._failures if f)}")
        return [r.get("content") or "" for r in records]

    def _write_usage(self) -> None:
        assert self.log is not None
        c = self.config
        usage = {"base_url": c["base_url"], "model": c["model"], "served_model": c["served_model"],
                 "api_key_env": c["api_key_env"], **self.log.usage(), "retries_this_process": self.retries}
        # Atomic but not fsync'ed: a summary of the log, written after every batch (an fsync cost a batch ~8 ms).
        with atomic_target(self.log.run_dir / USAGE_FILE) as tmp:
            tmp.write_text(json.dumps(usage, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def _tls(self) -> ssl.SSLContext:
        # Made once per model, not per batch: loading the CA bundle costs tens of milliseconds each time.
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context()
        return self._tls_context

    def _connect(self) -> _Connection:
        if self._connection is None:
            self._connection = _Connection(min(8, os.cpu_count() or 1))
            weakref.finalize(self, self._connection.close)
        return self._connection

    def _transports(self, conn: _Connection, url: str) -> asyncio.Queue[Any]:
        """The queue of free transports (made on first use, in the loop: `concurrency` of them), through the proxy
        the environment names for `url` (``https_proxy``, ``no_proxy``, ... as httpx's client reads them)."""
        import httpx2

        if conn.free is None:
            conn.free = asyncio.Queue()
            for _ in range(int(self.config["concurrency"])):
                conn.transports.append(httpx2.AsyncHTTPTransport(
                    verify=self._tls(), proxy=environment_proxy(url),
                    limits=httpx2.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=60.0)))
                conn.free.put_nowait(conn.transports[-1])
        return conn.free

    async def _answer_all(self, url: str, headers: dict[str, str],
                          conversations: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        conn = self._connect()
        free, loop = self._transports(conn, url), asyncio.get_running_loop()
        asked: dict[str, asyncio.Future[dict[str, Any]]] = {}  # the same request twice in a batch is asked once

        async def one(messages: list[dict[str, Any]]) -> dict[str, Any]:
            transport = await free.get()  # at most `concurrency` requests encoded or in flight
            try:
                data, key = await loop.run_in_executor(conn.pool, self._encode, messages)
                if self.log is not None and key in self.log:
                    return self.log.get(key)
                if key not in asked:
                    asked[key] = asyncio.ensure_future(self._ask(transport, url, headers, key, data,
                                                                 _pair_of(messages)))
                record = await asked[key]
                if self.on_answer is not None:  # the progress bar counts answers as they come
                    self.on_answer(1)
                return record
            finally:
                free.put_nowait(transport)

        tasks = [asyncio.ensure_future(one(m)) for m in conversations]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in [*tasks, *asked.values()]:
                t.cancel()
            await asyncio.gather(*tasks, *asked.values(), return_exceptions=True)
            raise

    def _say_retry(self, reason: str, attempt: int, delay: float) -> None:
        """One line on stderr per retry; the same reason at the same attempt (many requests in flight) once."""
        if (reason, attempt) not in self._said:
            self._said.add((reason, attempt))
            print(f"openai: {reason}; retry {attempt + 1} of {self.config['max_retries']} in {delay:.1f} s",
                  file=sys.stderr, flush=True)

    async def _ask(self, transport: Any, url: str, headers: dict[str, str], key: str, data: bytes,
                   pair: list[str]) -> dict[str, Any]:
        retries = int(self.config["max_retries"])
        spent = {"prompt_tokens": 0, "completion_tokens": 0}
        for attempt in range(retries + 1):
            try:
                record = await self._post(transport, url, headers, data)
            except _Retry as r:
                for k in spent:
                    spent[k] += int((r.usage or {}).get(k) or 0)
                if attempt == retries:
                    gave_up = f"{r.reason} (gave up after {retries} retr{'y' if retries == 1 else 'ies'})"
                    if not r.empty:
                        raise UserError(f"openai: {url}: {gave_up}; {r.hint}") from None
                    failure = {"failed": gave_up, "pair": pair, "usage": spent}
                    if self.log is not None:
                        self.log.append(key, failure)
                    return failure
                delay = retry_delay(attempt, base=float(self.config["backoff_s"]),
                                    cap=float(self.config["max_backoff_s"]), retry_after=r.retry_after,
                                    rng=self._rng)
                self.retries += 1
                self._say_retry(r.reason, attempt, delay)
                await asyncio.sleep(delay)
                continue
            for k in spent:  # what the empty attempts before it cost too
                record["usage"][k] = int(record["usage"].get(k) or 0) + spent[k]
            if self.log is not None:
                self.log.append(key, record)
            return record
        raise AssertionError("unreachable")

    async def _post(self, transport: Any, url: str, headers: dict[str, str], data: bytes) -> dict[str, Any]:
        import httpx2

        c = self.config
        request = httpx2.Request("POST", url, headers={**headers, "Content-Type": "application/json"}, content=data,
                                 extensions={"timeout": httpx2.Timeout(float(c["timeout_s"])).as_dict()})
        try:
            response = await transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx2.TimeoutException:
            raise _Retry(f"no answer within timeout_s={c['timeout_s']} s",
                         f"raise timeout_s or lower concurrency (now {c['concurrency']})") from None
        except httpx2.TransportError as e:
            raise _Retry(f"cannot reach the server ({type(e).__name__}: {e or 'connection failed'})",
                         "check that the server is up and base_url is right") from None
        status, phrase = response.status_code, response.reason_phrase
        if status == 429:
            raise _Retry(f"HTTP 429 {phrase}: {error_detail(response.text)}",
                         f"the server limits the request rate: lower --config concurrency (now {c['concurrency']}) "
                         "or raise max_retries", parse_retry_after(response.headers.get("retry-after")))
        if status >= 500:
            raise _Retry(f"HTTP {status} {phrase}: {error_detail(response.text)}",
                         "the server failed on these requests; its log says why",
                         parse_retry_after(response.headers.get("retry-after")))
        if status != 200:
            raise self._refusal(url, status, phrase, response.text)
        return self._parse(url, response)

    def _refusal(self, url: str, status: int, phrase: str, text: str) -> UserError:
        allowed = image_limit(text)
        if allowed is not None:
            sent = 2 * (1 + len(self.shots))
            return UserError(f"openai: the server takes at most {allowed} image(s) per request and each request here "
                             f"has {sent} (before and after{', and two per in-context example' if self.shots else ''}"
                             f"); start vLLM with --limit-mm-per-prompt '{{\"image\": {sent}}}' (README: Serve a "
                             "model)")
        hint = {401: f"check the key in ${self.config['api_key_env']}", 403: "check the key's permissions",
                404: "check base_url and model (the server's /v1/models lists its model ids)"}.get(
            status, "check the request options (extra_body, model, max_tokens)")
        return UserError(f"openai: {url} answered HTTP {status} {phrase}: {error_detail(text)}; {hint}")

    def _parse(self, url: str, response: Any) -> dict[str, Any]:
        """A chat completion's answer; a body that is not one is a `UserError` (asking again would not help), an
        empty answer a `_Retry`."""
        kind = response.headers.get("content-type", "no content type")
        try:
            data = response.json()
        except ValueError:
            raise UserError(f"openai: {url} answered HTTP 200 with {kind}, not JSON ({error_detail(response.text, 80)!r}"
                            "); base_url should be the API's root, which usually ends in /v1") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
            else None
        if not isinstance(message, dict):
            raise UserError(f"openai: {url} answered JSON that is not a chat completion (no choices[0].message: "
                            f"{error_detail(response.text, 80)!r}); is base_url an OpenAI-compatible API?")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise UserError(f"openai: {url} answered a message whose content is not text ({type(content).__name__})")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        usage = {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}
        finish = choices[0].get("finish_reason")
        if not (content or "").strip():
            thinking = any(isinstance(message.get(k), str) and message[k].strip()
                           for k in ("reasoning_content", "reasoning"))
            why = f"empty answer (content {'null' if content is None else repr(content)}, finish_reason {finish})"
            hint = (f"; the model used max_tokens={self.config['max_tokens']} on reasoning: raise max_tokens or turn "
                    "reasoning off" if thinking else "")
            raise _Retry(why + hint, "", empty=True, usage=usage)
        record = {"content": content, "finish_reason": finish, "model": data.get("model"), "usage": usage}
        if data.get("system_fingerprint"):
            record["system_fingerprint"] = data["system_fingerprint"]
        return record


@functools.lru_cache(maxsize=64)
def _recent_data_url(path: Path, mtime_ns: int, size: int, max_side: int | None) -> bytes:
    """`data_url_bytes` of the last images asked for (keyed by the file's time stamp and size too): the shots' images
    are in every request, and CLEVR-Change's before image in two neighbouring pairs."""
    return data_url_bytes(path, max_side)


def _pair_of(messages: list[dict[str, Any]]) -> list[str]:
    """The image files of the pair a conversation asks about (its last user turn's two images)."""
    images = [p["image_url"]["url"].path for p in messages[-1]["content"]
              if p.get("type") == "image_url" and isinstance(p["image_url"].get("url"), _Image)]
    return [str(p) for p in images[-2:]]
