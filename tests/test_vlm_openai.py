"""`openai` against a real OpenAI-compatible server (`transformers serve` with the tiny Qwen2.5-VL, loopback): answers
logged, usage summed, a resumed run answered from the log; the client's settings are not the run's identity. The
scripted failures, the run identity and empty answers are in test_openai_client.py, the images in
test_openai_images.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _chat_server import ChatServer, completion
from _cli import run_cli
from _tiny_vlm import build_tiny_vlm, transformers_serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    from idcbench.datasets import shapes

    return shapes.synthesize(tmp_path_factory.mktemp("shapes") / "shapes", scenes=40, size=64, seed=0,
                             overwrite=True, workers=1)


def _run(capsys, root, runs, url, *config, limit=1):
    args = ["run", "openai", "--config", f"base_url={url}", "--config", "model=m", "--config", "api_key_env=null",
            "--config", "backoff_s=0.01", "--config", "max_retries=2", "--config", "timeout_s=5",
            "--dataset", "shapes", "--data-root", root, "--runs-dir", runs, "--limit", limit, "--device", "cpu",
            "--metrics", "BLEU-4"]
    for item in config:
        args += ["--config", item]
    return run_cli(capsys, *args)


def test_real_server_and_resume_without_asking(shapes_root, tmp_path, capsys):
    model = build_tiny_vlm(tmp_path / "tiny")
    with transformers_serve(model) as url:
        # a real model on a shared CPU: allow it more than the scripted server's 5 s per answer
        code, _, err = _run(capsys, shapes_root, tmp_path / "runs", url, f"model={model}", "timeout_s=120", limit=4)
        assert code == 0, err
        (run,) = (tmp_path / "runs").glob("shapes/openai/*")
        log = (run / "requests.jsonl").read_bytes()
        records = [json.loads(line) for line in log.decode().splitlines()]
        usage = json.loads((run / "usage.json").read_text())
        assert len(records) == 4 == usage["requests"] and usage["failed_requests"] == 0
        assert usage["completion_tokens"] == sum(r["usage"]["completion_tokens"] for r in records) > 0
        preds = (run / "predictions.jsonl").read_bytes()
        # a resumed run (predictions lost) answers from the write-ahead log alone: it appends nothing to it
        (run / "predictions.jsonl").unlink()
        (run / "DONE").unlink()
        code, _, err = _run(capsys, shapes_root, tmp_path / "runs", url, f"model={model}", "timeout_s=120", limit=4)
        assert code == 0, err
        assert (run / "predictions.jsonl").read_bytes() == preds and (run / "requests.jsonl").read_bytes() == log


def test_client_settings_are_not_hashed_so_a_resume_with_others_asks_nothing_again(shapes_root, tmp_path, capsys):
    # After "gave up after N retries", the advice is to raise max_retries / timeout_s: the resumed run must be the
    # same run directory, answered from its write-ahead log.
    with ChatServer([completion()]) as server:
        code, _, err = _run(capsys, shapes_root, tmp_path, server.url, "concurrency=2", limit=3)
        assert code == 0, err
        (run,) = tmp_path.glob("shapes/openai/*")
        assert len(server.bodies) == 3
        (run / "predictions.jsonl").unlink()
        (run / "DONE").unlink()
        code, _, err = _run(capsys, shapes_root, tmp_path, server.url, "concurrency=4", "timeout_s=9",
                            "max_retries=7", limit=3)
    assert code == 0, err
    assert list(tmp_path.glob("shapes/openai/*")) == [run] and len(server.bodies) == 3
    recorded = json.loads((run / "run_spec.json").read_text())
    runtime = recorded["runtime_config"]
    assert runtime["concurrency"] == 4 and runtime["timeout_s"] == 9 and runtime["base_url"] == server.url
    assert "concurrency" not in recorded["spec"]["config"] and recorded["spec"]["config"]["max_tokens"] == 48
