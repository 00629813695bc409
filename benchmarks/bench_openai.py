"""Captions per second of `openai` at concurrency 1, 8 and 32 against loopback OpenAI-compatible servers.

What is timed is the runner's caption stage (`idcbench.run.caption.caption_examples`) over `shapes` test pairs: the
images as base64 data URLs, the chat-completions requests (async, ``concurrency`` in flight), the write-ahead log
(every answer appended), post-processing and ``predictions.jsonl`` (fsync'ed per batch), with a batch size of 4 x
concurrency (at least 32; ``--batch-size``), as the README advises: the next requests go out while a batch's last
answers come in. Each round starts from an empty run directory, so every pair is asked (a resumed run would answer
from the log). Besides the rate, the client's CPU time per caption (every thread of its process): on a shared
machine other work slows the first, hardly the second.

Images (``--images``): ``shapes`` (default), the `shapes` PNGs as generated (RGB, ``--size`` px squares); ``clevr``,
the same scenes saved as CLEVR-Change ships its renders (`clevr_like`: 480 x 320 RGBA PNGs, alpha 255 everywhere,
Blender's text chunks, about 190 KB each), which costs the client one inflate per image to see that the alpha is
opaque (`idcbench.models.vlm.data_url`).

Two servers, both on 127.0.0.1:
- ``latency``: an HTTP/1.1 server in its own process that answers every request after a fixed delay
  (``--latency-ms``, 50 by default: the order of a GPU server's time for one short caption), without parsing it (its
  own CPU shares the machine with the client's). The ideal rate is concurrency / delay; the ratio to it says how much
  the client itself costs.
- ``transformers``: ``transformers serve`` (the real server the tests use) with the tiny random Qwen2.5-VL of
  ``tests/_tiny_vlm.py`` on the CPU. On a 2-core machine its own generation bounds the rate.

``make bench`` runs the ``latency`` server at the three concurrencies with 320 px ``shapes`` images and prints
captions/s. For the table in benchmarks/README.md: ``python benchmarks/bench_openai.py [--server
latency|transformers|both] [--images shapes|clevr] [--pairs 128] [--rounds 2] [--size 64] [--batch-size N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Sequence

import pytest

CONCURRENCIES = (1, 8, 32)
PAIRS, LATENCY_MS, SIZE = 128, 50.0, 320
BATCHES_IN_FLIGHT = 4  # the runner's batch size is 4 x concurrency (at least 32), as the README advises
ANSWER = "The difference is that the small red cube has been moved."


class _LatencyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as vLLM and the hosted APIs serve
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    latency_s = LATENCY_MS / 1000.0

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))  # not parsed: the server's own CPU is not the client's
        time.sleep(self.latency_s)
        data = json.dumps({"id": "x", "object": "chat.completion", "model": "fixed-latency",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": ANSWER}}],
                           "usage": {"prompt_tokens": 100, "completion_tokens": 12}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 32 clients connecting at once must not overflow the listen backlog


def _serve(latency_s: float, ports: "multiprocessing.Queue[int]") -> None:
    handler = type("Handler", (_LatencyHandler,), {"latency_s": latency_s})
    server = _Server(("127.0.0.1", 0), handler)
    ports.put(server.server_address[1])
    server.serve_forever()


@contextlib.contextmanager
def latency_server(latency_ms: float = LATENCY_MS) -> Iterator[tuple[str, str]]:
    """(base_url, model id) of a server that answers every chat completion after `latency_ms` (threads: requests
    overlap as on a server that batches them). It runs in its own process, so that its JSON parsing does not take
    the client's interpreter lock and count as the client's cost."""
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve, args=(latency_ms / 1000.0, ports), daemon=True)
    proc.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=30)}/v1", "fixed-latency"
    finally:
        proc.terminate()
        proc.join(10)


@contextlib.contextmanager
def transformers_server(workdir: Path) -> Iterator[tuple[str, str]]:
    """(base_url, model id) of `transformers serve` with the tests' tiny Qwen2.5-VL."""
    tests = Path(__file__).resolve().parents[1] / "tests"
    sys.path.insert(0, str(tests))
    from _tiny_vlm import build_tiny_vlm, transformers_serve

    model_dir = build_tiny_vlm(workdir / "tiny-qwen2.5-vl")
    with transformers_serve(model_dir) as url:
        yield url, str(model_dir)


def shapes_pairs(workdir: Path, n: int, size: int = 64, images: str = "shapes"):
    """`n` pairs of a small `shapes` dataset generated in `workdir` (`size` px images; any split: only the images
    are sent); ``images="clevr"`` saves them again as CLEVR-Change's files are (`clevr_like`)."""
    from idcbench.datasets import shapes

    root = shapes.synthesize(workdir / "shapes", scenes=max(n, 40), size=size, seed=0, overwrite=True,
                             workers=1)
    from idcbench.data import load_dataset

    dataset = load_dataset("shapes", root)
    examples = [e for split in dataset.splits() for e in dataset.examples(split)]
    assert len(examples) >= n, f"only {len(examples)} pairs"
    if images == "clevr":
        for path in {p for e in examples[:n] for p in (e.before, e.after)}:
            clevr_like(path)
    return examples[:n]


def clevr_like(path: Path) -> None:
    """Save the image at `path` again as CLEVR-Change's renders are: 480 x 320, RGBA with alpha 255 everywhere,
    Blender's text chunks (which the client must not send), and a little render noise (Gaussian, sigma 0.7 levels,
    seeded by the file name) so that a file is as large as theirs (about 190 KB, PIL's default compression)."""
    import zlib

    import numpy as np
    from PIL import Image, PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for key, value in (("File", "data/base_scene.blend"), ("Date", "2018/10/13 06:18:26"), ("Time", "00:00:00:01"),
                       ("Frame", "001"), ("Camera", "Camera"), ("Scene", "Scene"), ("RenderTime", "00:08.09")):
        meta.add_text(key, value)
    rgb = np.asarray(Image.open(path).convert("RGB").resize((480, 320), Image.BICUBIC), dtype=np.float64)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    rgb = np.clip(rgb + rng.normal(0.0, 0.7, rgb.shape), 0, 255).round().astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(path, pnginfo=meta, dpi=(72, 72))


def batch_size_for(concurrency: int) -> int:
    return max(32, BATCHES_IN_FLIGHT * concurrency)


def caption_once(url: str, model_id: str, examples: Sequence, concurrency: int, batch_size: int | None = None) -> int:
    """Caption `examples` through `openai` into a fresh run directory, as `idcbench run` does (`batch_size`: default
    `batch_size_for(concurrency)`); the distinct captions."""
    from idcbench.captioner import RunContext, TrainData
    from idcbench.factory import create_model
    from idcbench.run.caption import caption_examples
    from idcbench.run.reporter import Reporter

    config = {"base_url": url, "model": model_id, "api_key_env": None, "concurrency": concurrency,
              "instruction": "What changed between the two images?", "max_retries": 0}
    model = create_model("openai", **config)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        model.bind_run(RunContext(run_dir, TrainData("shapes")))
        n = caption_examples(model, examples, run_dir / "predictions.jsonl",
                             batch_size=max(batch_size or batch_size_for(concurrency), concurrency),
                             done={}, reporter=Reporter())
        assert n == len(examples)
        lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(examples)
        return len({json.loads(line)["caption"] for line in lines})


# ---------------------------------------------------------------------------------------------- pytest-benchmark
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    examples = shapes_pairs(tmp_path_factory.mktemp("bench-openai"), PAIRS, SIZE)
    with latency_server() as (url, model_id):
        caption_once(url, model_id, examples[:4], 1)  # warm-up (server start, first connection)
        yield url, model_id, examples


@pytest.mark.parametrize("concurrency", CONCURRENCIES)
def test_openai_captions_per_second(benchmark, setup, concurrency, capsys):
    url, model_id, examples = setup
    distinct = benchmark.pedantic(caption_once, args=(url, model_id, examples, concurrency), rounds=2, iterations=1)
    assert distinct == 1  # the server's one answer, post-processed
    rate = len(examples) / benchmark.stats.stats.min
    benchmark.extra_info.update(pairs=len(examples), concurrency=concurrency, latency_ms=LATENCY_MS,
                                captions_per_s=round(rate, 1))
    with capsys.disabled():  # the number this benchmark is about, in `make bench`'s output
        print(f"\nopenai client, {SIZE} px PNG pairs, fixed {LATENCY_MS:g} ms server, concurrency {concurrency}: "
              f"{rate:.1f} captions/s (ideal {concurrency / LATENCY_MS * 1000:.0f})")


# ---------------------------------------------------------------------------------------------- the README table
def _best(fn, rounds: int) -> tuple[float, float]:
    """The shortest wall time of `rounds` calls, and the least CPU time this process (every thread) spent in one:
    on a shared machine the second says what the client costs even when other work slows the first."""
    wall = cpu = float("inf")
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def main(servers: Sequence[str], pairs: int, rounds: int, latency_ms: float, size: int = 64,
         images: str = "shapes", batch_size: int | None = None) -> None:
    from idcbench.errors import UserError

    with tempfile.TemporaryDirectory() as tmp:
        examples = shapes_pairs(Path(tmp), pairs, size, images)
        what = "480 x 320 RGBA PNG (CLEVR-like)" if images == "clevr" else f"{size} px RGB PNG"
        batches = f"max({batch_size}, concurrency)" if batch_size else f"max(32, {BATCHES_IN_FLIGHT} x concurrency)"
        print(f"{pairs} shapes pairs, {what}, batch size {batches}, best of {rounds}")
        print(f"load average before: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
              if Path("/proc/loadavg").exists() else "")
        print("| server | concurrency | s | captions/s | ideal captions/s | of ideal | client CPU ms per caption |")
        print("|---|---|---|---|---|---|---|")
        for name in servers:
            ctx = latency_server(latency_ms) if name == "latency" else transformers_server(Path(tmp))
            with ctx as (url, model_id):
                caption_once(url, model_id, examples[:4], 1)  # warm-up (server start, first connection)
                for c in CONCURRENCIES:
                    try:
                        s, cpu = _best(lambda: caption_once(url, model_id, examples, c, batch_size), rounds)
                    except UserError as e:  # e.g. a server that cannot keep up answers nothing within timeout_s
                        print(f"| {name} | {c} | failed: {e} | – | – | – | – |")
                        continue
                    ms = f"{cpu / pairs * 1000:.2f}"
                    if name == "latency":
                        ideal = c / (latency_ms / 1000.0)
                        label = f"fixed {latency_ms:g} ms per request"
                        print(f"| {label} | {c} | {s:.2f} | {pairs / s:.1f} | {ideal:.0f} | {pairs / s / ideal:.0%} "
                              f"| {ms} |")
                    else:
                        print(f"| transformers serve, tiny Qwen2.5-VL, CPU | {c} | {s:.2f} | {pairs / s:.1f} | – | – "
                              f"| {ms} |")
        if Path("/proc/loadavg").exists():
            print(f"load average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=("latency", "transformers", "both"), default="both")
    ap.add_argument("--pairs", type=int, default=PAIRS)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    ap.add_argument("--size", type=int, default=64, help="side of the generated shapes images in pixels")
    ap.add_argument("--images", choices=("shapes", "clevr"), default="shapes",
                    help="shapes: as generated; clevr: saved again as CLEVR-Change's 480 x 320 RGBA renders")
    ap.add_argument("--batch-size", type=int, default=None,
                    help=f"runner batch size (at least concurrency; default max(32, {BATCHES_IN_FLIGHT} x concurrency))")
    args = ap.parse_args()
    main(("latency", "transformers") if args.server == "both" else (args.server,), args.pairs, args.rounds,
         args.latency_ms, args.size, args.images, args.batch_size)
