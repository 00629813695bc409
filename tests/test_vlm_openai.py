"""`openai` against a real OpenAI-compatible server (`transformers serve` with the tiny Qwen2.5-VL, loopback) and an
in-test HTTP server scripted to fail: server down, 429 with Retry-After, 500s, malformed JSON, empty content, a
missing key (one line, exit 2, before any request)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from _cli import free_port, run_cli
from _tiny_vlm import build_tiny_vlm, transformers_serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    from idcbench.datasets import shapes

    return shapes.synthesize(tmp_path_factory.mktemp("shapes") / "shapes", scenes=40, size=64, seed=0,
                             overwrite=True, workers=1)


class Scripted:
    """A loopback chat-completions server answering from a script: (status, body, headers) per request, the last
    entry repeated."""

    def __init__(self, script):
        self.script, self.times, self.headers = list(script), [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.times.append(time.monotonic())
                outer.headers.append(dict(self.headers))
                status, body, headers = outer.script[min(len(outer.times), len(outer.script)) - 1]
                data = body.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def ok(text="the cube moved"):
    return (200, json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 10, "completion_tokens": 3}}), {})


def _run(capsys, root, runs, url, *config, limit=1):
    args = ["run", "openai", "--config", f"base_url={url}", "--config", "model=m", "--config", "api_key_env=null",
            "--config", "backoff_s=0.01", "--config", "max_retries=2", "--config", "timeout_s=5",
            "--dataset", "shapes", "--data-root", root, "--runs-dir", runs, "--limit", limit, "--device", "cpu",
            "--metrics", "BLEU-4"]
    for item in config:
        args += ["--config", item]
    return run_cli(capsys, *args)


def test_failures_against_a_scripted_server(shapes_root, tmp_path, capsys, monkeypatch):
    # 429 with Retry-After then success: the wait is the server's (backoff alone would be ~10 ms)
    s = Scripted([(429, "slow down", {"Retry-After": "1"}), ok()])
    code, _, err = _run(capsys, shapes_root, tmp_path / "a", s.url)
    s.close()
    assert code == 0, err
    assert len(s.times) == 2
    assert s.times[1] - s.times[0] >= 0.9
    # 500s then success; 500 for ever: one line after max_retries
    s = Scripted([(500, "oops", {}), (503, "busy", {}), ok()])
    code, _, err = _run(capsys, shapes_root, tmp_path / "b", s.url)
    s.close()
    assert code == 0, err
    s = Scripted([(500, "oops", {})])
    code, _, err = _run(capsys, shapes_root, tmp_path / "c", s.url)
    s.close()
    assert code == 2 and "HTTP 500" in err and "gave up after 2 retries" in err and len(s.times) == 3
    # malformed JSON for ever
    s = Scripted([(200, "not json", {})])
    code, _, err = _run(capsys, shapes_root, tmp_path / "d", s.url)
    s.close()
    assert code == 2 and "malformed answer" in err and "Traceback" not in err
    # empty content: an empty caption, counted in usage.json
    s = Scripted([ok("")])
    code, _, err = _run(capsys, shapes_root, tmp_path / "e", s.url)
    s.close()
    assert code == 0, err
    (run,) = (tmp_path / "e").glob("shapes/openai/*")
    assert json.loads((run / "usage.json").read_text())["empty_answers"] == 1
    # server down
    code, _, err = _run(capsys, shapes_root, tmp_path / "f", f"http://127.0.0.1:{free_port()}/v1")
    assert code == 2 and "cannot reach the server" in err and len(err.strip().splitlines()) == 1
    # missing key: one line, exit 2, no request, no run directory
    monkeypatch.delenv("IDCBENCH_TEST_KEY", raising=False)
    s = Scripted([ok()])
    code, _, err = _run(capsys, shapes_root, tmp_path / "g", s.url, "api_key_env=IDCBENCH_TEST_KEY")
    assert code == 2 and "IDCBENCH_TEST_KEY is not set" in err and not s.times and not (tmp_path / "g").exists()
    # with the key: sent as a bearer token, never written into the run directory
    monkeypatch.setenv("IDCBENCH_TEST_KEY", "sk-secret-123")
    code, _, err = _run(capsys, shapes_root, tmp_path / "g", s.url, "api_key_env=IDCBENCH_TEST_KEY")
    s.close()
    assert code == 0, err
    assert s.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert not any("sk-secret-123" in p.read_text(errors="replace") for p in (tmp_path / "g").rglob("*") if p.is_file())


def test_real_server_and_resume_without_asking(shapes_root, tmp_path, capsys):
    model = build_tiny_vlm(tmp_path / "tiny")
    with transformers_serve(model) as url:
        # a real model on a shared CPU: allow it more than the scripted server's 5 s per answer
        code, _, err = _run(capsys, shapes_root, tmp_path / "runs", url, f"model={model}", "timeout_s=120", limit=4)
        assert code == 0, err
    (run,) = (tmp_path / "runs").glob("shapes/openai/*")
    log = [json.loads(line) for line in (run / "requests.jsonl").read_text().splitlines()]
    usage = json.loads((run / "usage.json").read_text())
    assert len(log) == 4 == usage["requests"]
    assert usage["completion_tokens"] == sum(r["usage"]["completion_tokens"] for r in log) > 0
    preds = (run / "predictions.jsonl").read_bytes()
    # the server is gone: a resumed run (predictions lost) answers from the write-ahead log alone
    (run / "predictions.jsonl").unlink()
    (run / "DONE").unlink()
    code, _, err = _run(capsys, shapes_root, tmp_path / "runs", url, f"model={model}", "timeout_s=120", limit=4)
    assert code == 0, err
    assert (run / "predictions.jsonl").read_bytes() == preds


def test_client_settings_are_not_hashed_so_a_resume_with_others_asks_nothing_again(shapes_root, tmp_path, capsys):
    # After "gave up after N retries", the advice is to raise max_retries / timeout_s: the resumed run must be the
    # same run directory, answered from its write-ahead log.
    s = Scripted([ok()])
    code, _, err = _run(capsys, shapes_root, tmp_path, s.url, "concurrency=2", limit=3)
    assert code == 0, err
    (run,) = tmp_path.glob("shapes/openai/*")
    assert len(s.times) == 3
    (run / "predictions.jsonl").unlink()
    (run / "DONE").unlink()
    code, _, err = _run(capsys, shapes_root, tmp_path, s.url, "concurrency=4", "timeout_s=9", "max_retries=7", limit=3)
    s.close()
    assert code == 0, err
    assert list(tmp_path.glob("shapes/openai/*")) == [run] and len(s.times) == 3
    recorded = json.loads((run / "run_spec.json").read_text())
    assert recorded["runtime_config"]["concurrency"] == 4 and recorded["runtime_config"]["timeout_s"] == 9
    assert "concurrency" not in recorded["spec"]["config"] and recorded["spec"]["config"]["max_tokens"] == 48


def test_image_data_url_sends_the_pixels_and_no_metadata_of_the_file(tmp_path):
    import base64
    import io

    import numpy as np
    from PIL import Image, PngImagePlugin

    from idcbench.models.vlm.chat_server import image_data_url

    pixels = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Description", "the small red cube was moved")  # a label a file could carry
    Image.fromarray(pixels).save(tmp_path / "before.png", pnginfo=meta)
    assert Image.open(tmp_path / "before.png").info["Description"]
    url = image_data_url(tmp_path / "before.png")
    assert url.startswith("data:image/png;base64,")
    data = base64.b64decode(url.split(",", 1)[1])
    sent = Image.open(io.BytesIO(data))
    assert b"cube" not in data and "Description" not in sent.info
    assert (np.asarray(sent) == pixels).all()
    small = Image.open(io.BytesIO(base64.b64decode(image_data_url(tmp_path / "before.png", 25).split(",", 1)[1])))
    assert small.size == (25, 15)
