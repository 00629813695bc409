"""`idcbench run openai` against loopback servers that answer what a test scripts (`_chat_server.ChatServer`): empty
answers (retried, recorded, shown in the tables, asked again on a rerun), the run's identity (the served model, not
the address), what the client says when a server fails, and the request it sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _chat_server import ChatServer, completion, images_of
from _cli import free_port, run_cli
from idcbench.models.vlm.data_url import wire_bytes


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    from idcbench.datasets import shapes

    return shapes.synthesize(tmp_path_factory.mktemp("shapes") / "shapes", scenes=40, size=64, seed=0,
                             overwrite=True, workers=1)


def _run(capsys, root, runs, url, *config, limit=4, model="m"):
    args = ["run", "openai", "--config", f"base_url={url}", "--config", f"model={model}", "--config",
            "api_key_env=null", "--config", "backoff_s=0.01", "--config", "max_retries=2", "--config", "timeout_s=5",
            "--dataset", "shapes", "--data-root", root, "--runs-dir", runs, "--limit", limit, "--device", "cpu",
            "--metrics", "BLEU-4,CIDEr-D"]
    for item in config:
        args += ["--config", item]
    return run_cli(capsys, *args)


def _examples(root: Path, n: int):
    from idcbench.data import load_dataset

    return load_dataset("shapes", root).examples("test")[:n]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------ empty answers
def test_an_empty_answer_is_retried_recorded_shown_and_asked_again(shapes_root, tmp_path, capsys):
    examples = _examples(shapes_root, 4)
    bad = examples[1]
    bad_images = [wire_bytes(bad.before)[1], wire_bytes(bad.after)[1]]
    state = {"null": True}

    def reply(body, n):
        if images_of(body) == bad_images:
            return completion(None if state["null"] else "the sphere is gone")
        return completion("the cube moved")

    runs = tmp_path / "runs"
    with ChatServer(reply) as server:
        code, out, err = _run(capsys, shapes_root, runs, server.url)
        assert code == 0, err
        asked_bad = [b for b in server.bodies if images_of(b) == bad_images]
        assert len(asked_bad) == 3 and len(server.bodies) == 6  # the bad pair: once and 2 retries; the others once
        assert "retry 1 of 2" in err and "retry 2 of 2" in err and "empty answer (content null" in err
        assert f"1 of 4 pairs have no caption ({bad.id})" in " ".join(err.split())
        (run,) = runs.glob("shapes/openai/*")
        failed = json.loads((run / "metrics.json").read_text())["run"]["failed"]
        assert failed["n"] == 1 and failed["ids"] == [bad.id] and "empty answer" in next(iter(failed["reasons"]))
        preds = {r["id"]: r for r in _lines(run / "predictions.jsonl")}
        assert preds[bad.id]["caption"] == "" and "empty answer" in preds[bad.id]["failed"]
        assert all(preds[e.id]["caption"] == "the cube moved" for e in examples if e is not bad)
        usage = json.loads((run / "usage.json").read_text())
        assert usage["requests"] == 3 and usage["failed_requests"] == 1
        assert usage["failed_pairs"] == [{"before": str(bad.before), "after": str(bad.after),
                                          "reason": preds[bad.id]["failed"]}]
        assert usage["prompt_tokens"] == 6 * 10  # every attempt was paid for, the empty ones too
        wal = _lines(run / "requests.jsonl")
        assert sum("failed" in r for r in wal) == 1 and all(r.get("content") for r in wal if "failed" not in r)
        assert not (run / "DONE").exists()

        # the tables say so: compare (stderr and its Markdown) and the leaderboard pages
        code, out, err = run_cli(capsys, "compare", run, "--format", "md", "--resamples", "0")
        assert code == 0, err
        line = f"has no caption for 1 of 4 pairs ({bad.id}:"
        assert line in " ".join(err.split()) and f"**Warning:** openai: seed 0 {line}" in out
        code, out, err = run_cli(capsys, "leaderboard", "--runs-dir", runs, "--out", tmp_path / "lb",
                                 "--resamples", "0")
        assert code == 0, err
        assert line in (tmp_path / "lb" / "README.md").read_text()
        assert line in (tmp_path / "lb" / "index.html").read_text()

        # the same command again: only the failed pair is asked, the run is scored again and now DONE
        state["null"] = False
        before = len(server.bodies)
        code, out, err = _run(capsys, shapes_root, runs, server.url)
        assert code == 0, err
        assert len(server.bodies) == before + 1 and images_of(server.bodies[-1]) == bad_images
        assert "reused" not in out and "no caption" not in err
        assert list(runs.glob("shapes/openai/*")) == [run] and (run / "DONE").exists()
        metrics = json.loads((run / "metrics.json").read_text())
        assert "failed" not in metrics["run"]
        preds = _lines(run / "predictions.jsonl")
        assert [r["id"] for r in preds] == [e.id for e in examples]
        assert {r["id"]: r["caption"] for r in preds}[bad.id] == "the sphere is gone"
        assert not any("failed" in r for r in preds)
        assert json.loads((run / "usage.json").read_text())["failed_requests"] == 0
        per_sample = {r["id"]: r["prediction"] for r in _lines(run / "per_sample.jsonl")}
        assert per_sample[bad.id] == "the sphere is gone"

        code, out, err = _run(capsys, shapes_root, runs, server.url)
        assert code == 0 and "reused" in out and len(server.bodies) == before + 1


def test_a_reasoning_model_out_of_tokens_is_told_to_raise_max_tokens(shapes_root, tmp_path, capsys):
    reply = completion(None, reasoning_content="Let me compare the two images. First, the")
    with ChatServer([reply]) as server:
        code, out, err = _run(capsys, shapes_root, tmp_path, server.url, "max_retries=0", limit=1)
    assert code == 0, err
    assert "raise max_tokens" in err and "1 of 1 pairs have no caption" in " ".join(err.split())


# ------------------------------------------------------------------------------------------------ run identity
def test_the_served_model_is_the_identity_not_the_address(shapes_root, tmp_path, capsys):
    adapter = {"id": "idc-lora", "object": "model", "owned_by": "vllm", "created": 1,
               "root": "/adapters/idc-clevr", "parent": "Qwen/Qwen2.5-VL-7B-Instruct"}
    base = {"id": "Qwen/Qwen2.5-VL-7B-Instruct", "object": "model", "root": "Qwen/Qwen2.5-VL-7B-Instruct",
            "parent": None}
    runs = tmp_path / "runs"
    with ChatServer([completion()], models=[base, adapter]) as server:
        code, out, err = _run(capsys, shapes_root, runs, server.url, model="idc-lora")
        assert code == 0, err
        (run,) = runs.glob("shapes/openai/*")
        recorded = json.loads((run / "run_spec.json").read_text())
        config = recorded["spec"]["config"]
        assert config["served_model"] == {"root": "/adapters/idc-clevr", "parent": "Qwen/Qwen2.5-VL-7B-Instruct"}
        assert config["model"] == "idc-lora" and "base_url" not in config
        assert {k: config[k] for k in ("max_tokens", "temperature", "seed", "extra_body")} == \
            {"max_tokens": 48, "temperature": 0, "seed": 0, "extra_body": {}}
        assert recorded["runtime_config"]["base_url"] == server.url
        usage = json.loads((run / "usage.json").read_text())
        assert usage["served_model"] == config["served_model"] and usage["answered_by"] == ["served-model"]
        assert server.bodies[0]["model"] == "idc-lora"
        # the same server by another name: the same run
        code, out, err = _run(capsys, shapes_root, runs, f"http://localhost:{server.port}/v1/", model="idc-lora")
        assert code == 0 and "reused" in out, err
        assert list(runs.glob("shapes/openai/*")) == [run]
    # moved to another port: the same run resumes, every answer from its log
    (run / "DONE").unlink()
    (run / "predictions.jsonl").unlink()
    with ChatServer([completion()], models=[base, adapter]) as moved:
        code, out, err = _run(capsys, shapes_root, runs, moved.url, model="idc-lora")
        assert code == 0, err
        assert list(runs.glob("shapes/openai/*")) == [run] and not moved.bodies
    # other weights behind the same name: another run
    with ChatServer([completion()], models=[base, {**adapter, "root": "/adapters/idc-clevr-v2"}]) as retrained:
        code, out, err = _run(capsys, shapes_root, runs, retrained.url, model="idc-lora")
        assert code == 0, err
        assert len(list(runs.glob("shapes/openai/*"))) == 2 and len(retrained.bodies) == 4


# ------------------------------------------------------------------------------------------------ server failures
def test_a_server_error_shows_its_message_once_per_retry(shapes_root, tmp_path, capsys):
    body = json.dumps({"object": "error", "message": "CUDA out of memory. Tried to allocate 2.00 GiB", "code": 500})
    with ChatServer([(500, body, {"Content-Type": "application/json"})]) as server:
        code, _, err = _run(capsys, shapes_root, tmp_path, server.url, "concurrency=4", "backoff_s=0.3")
    assert code == 2 and len(server.bodies) > 3  # 4 requests in flight, each retried: still one line per retry
    lines = err.strip().splitlines()
    retries = [ln for ln in lines if "retry" in ln]
    assert len(retries) == 2 and "retry 1 of 2" in retries[0] and "retry 2 of 2" in retries[1]
    assert all("HTTP 500 Internal Server Error: CUDA out of memory" in ln for ln in retries)
    assert "CUDA out of memory" in lines[-1] and "gave up after 2 retries" in lines[-1]
    assert "Traceback" not in err


@pytest.mark.parametrize("reply, says", [
    ((200, "<!doctype html><html><body>Welcome to nginx</body></html>", {"Content-Type": "text/html"}),
     "answered HTTP 200 with text/html, not JSON"),
    ((200, '{"choices": [', {"Content-Type": "application/json"}), "not JSON"),
    ((200, '{"id": "x", "choices": []}', {"Content-Type": "application/json"}), "not a chat completion"),
    ((400, '{"object": "error", "message": "At most 1 image(s) may be provided in one request.", "code": 400}', {}),
     "--limit-mm-per-prompt '{\"image\": 2}'"),
    ((404, '{"detail": "The model `m` does not exist."}', {}), "does not exist"),
])
def test_an_answer_that_retrying_would_not_change_ends_the_run_at_once(shapes_root, tmp_path, capsys, reply, says):
    with ChatServer([reply]) as server:
        code, _, err = _run(capsys, shapes_root, tmp_path, server.url, "concurrency=1", limit=1)
    assert code == 2 and len(server.bodies) == 1, err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_rate_limits_and_time_outs_get_their_own_advice(shapes_root, tmp_path, capsys):
    with ChatServer([(429, '{"error": {"message": "Rate limit reached"}}', {"Retry-After": "0"})]) as server:
        code, _, err = _run(capsys, shapes_root, tmp_path / "a", server.url, "concurrency=3", limit=1)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Rate limit reached" in last and "concurrency (now 3)" in last
    assert "check that the server is up" not in err
    # Retry-After is the server's wait (backoff alone would be ~10 ms)
    with ChatServer([(429, "slow down", {"Retry-After": "1"}), completion()]) as server:
        code, _, err = _run(capsys, shapes_root, tmp_path / "b", server.url, limit=1)
    assert code == 0, err
    assert len(server.times) == 2 and server.times[1] - server.times[0] >= 0.9


def test_what_fails_before_any_request(shapes_root, tmp_path, capsys, monkeypatch):
    # no scheme: refused at once, no run directory
    port = free_port()
    code, _, err = _run(capsys, shapes_root, tmp_path / "a", f"127.0.0.1:{port}/v1")
    assert code == 2 and f"http://127.0.0.1:{port}/v1" in err and not (tmp_path / "a").exists()
    # nobody listening: one line, before the run directory exists
    code, _, err = _run(capsys, shapes_root, tmp_path / "b", f"http://127.0.0.1:{port}/v1")
    assert code == 2 and "cannot reach the server" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
    # missing key: one line, exit 2, no request, no run directory
    monkeypatch.delenv("IDCBENCH_TEST_KEY", raising=False)
    with ChatServer([completion()], models=[]) as server:
        code, _, err = _run(capsys, shapes_root, tmp_path / "c", server.url, "api_key_env=IDCBENCH_TEST_KEY")
        assert code == 2 and "IDCBENCH_TEST_KEY is not set" in err and not server.bodies and not server.gets
        assert not (tmp_path / "c").exists()
        # with the key: sent as a bearer token, never written into the run directory
        monkeypatch.setenv("IDCBENCH_TEST_KEY", "sk-secret-123")
        code, _, err = _run(capsys, shapes_root, tmp_path / "c", server.url, "api_key_env=IDCBENCH_TEST_KEY")
        assert code == 0, err
        assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert not any("sk-secret-123" in p.read_text(errors="replace") for p in (tmp_path / "c").rglob("*")
                   if p.is_file())


def test_the_request_key_is_the_hash_of_the_bytes_sent(shapes_root):
    from idcbench.models.vlm.chat_server import OpenAICompatible
    from idcbench.models.vlm.data_url import image_data_url
    from idcbench.models.vlm.wal import request_key
    from idcbench.spec import canonical_json

    model = OpenAICompatible({"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": None,
                              "instruction": "What changed?", "extra_body": {"top_k": 1}})
    (example,) = _examples(shapes_root, 1)
    data, key = model._encode(model.conversations([example.pair])[0])
    body = json.loads(data)
    assert data == canonical_json(body).encode() and key == request_key(body)
    assert [p["image_url"]["url"] for p in body["messages"][0]["content"][:2]] == \
        [image_data_url(example.before), image_data_url(example.after)]
    assert body["top_k"] == 1 and body["max_tokens"] == 48 and body["model"] == "m"


def test_a_proxy_from_the_environment_carries_the_requests(shapes_root, tmp_path, capsys, monkeypatch):
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with ChatServer([completion()], models=[{"id": "m", "root": "/weights/m"}]) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url.removesuffix("/v1"))
        code, _, err = _run(capsys, shapes_root, tmp_path, "http://idc-server.invalid:8000/v1", limit=2)
    assert code == 0, err
    assert len(proxy.bodies) == 2 and proxy.gets == ["http://idc-server.invalid:8000/v1/models"]
    (run,) = tmp_path.glob("shapes/openai/*")
    assert json.loads((run / "run_spec.json").read_text())["spec"]["config"]["served_model"] == {"root": "/weights/m"}


# ------------------------------------------------------------------------------------------------ the request
def test_the_request_carries_the_two_images_and_no_metadata_of_their_files(tmp_path, capsys):
    import io

    import numpy as np
    from PIL import Image, PngImagePlugin

    from idcbench.data import load_image

    rng = np.random.default_rng(0)
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Description", "the small red cube was moved")
    rows = []
    for i in range(3):
        pixels = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)  # random alpha: transparent pixels
        Image.fromarray(np.dstack([pixels[..., :3], np.full((24, 32), 255, np.uint8)]), "RGBA").save(
            tmp_path / f"{i}_before.png", pnginfo=meta)
        Image.fromarray(pixels, "RGBA").save(tmp_path / f"{i}_after.png", pnginfo=meta)
        rows.append({"id": str(i), "before": f"{i}_before.png", "after": f"{i}_after.png",
                     "captions": ["a change"], "split": "test"})
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with ChatServer([completion()]) as server:
        code, _, err = run_cli(capsys, "run", "openai", "--config", f"base_url={server.url}", "--config", "model=m",
                               "--config", "api_key_env=null", "--dataset", f"pairs:{tmp_path / 'pairs.jsonl'}",
                               "--runs-dir", tmp_path / "runs", "--metrics", "BLEU-4")
    assert code == 0, err
    assert len(server.bodies) == 3 and not any(b"cube" in raw for raw in server.raw)
    for body in server.bodies:
        before, after = (Image.open(io.BytesIO(img)) for img in images_of(body))
        assert not before.info and not after.info
        assert before.mode == "RGBA" and after.mode == "RGB"  # opaque: as it is; transparent: as load_image sees it
    sent = {tuple(np.asarray(Image.open(io.BytesIO(images_of(b)[1]))).ravel()[:8]) for b in server.bodies}
    expected = {tuple(np.asarray(load_image(tmp_path / f"{r['id']}_after.png")).ravel()[:8]) for r in rows}
    assert sent == expected


def test_the_progress_bar_counts_answers_as_they_come(shapes_root, tmp_path):
    """A batch of a server model moves the caption bar answer by answer (it showed 0/60 while 20 answers were logged),
    and never counts a pair twice."""
    from idcbench.captioner import RunContext, TrainData
    from idcbench.factory import create_model
    from idcbench.run.caption import caption_examples
    from idcbench.run.reporter import Reporter

    class Counting(Reporter):
        def __init__(self):
            self.steps: list[int] = []

        def advance(self, task: str, n: int = 1) -> None:
            self.steps.append(n)

    examples = _examples(shapes_root, 6)
    with ChatServer([completion("the cube moved")], models=[{"id": "m", "object": "model"}]) as server:
        model = create_model("openai", base_url=server.url, model="m", api_key_env=None, max_tokens=8,
                             instruction="What changed?", concurrency=2)
        model.bind_run(RunContext(tmp_path, TrainData("shapes")))
        reporter = Counting()
        caption_examples(model, examples, tmp_path / "predictions.jsonl", batch_size=6, done={}, reporter=reporter)
    assert reporter.steps.count(1) == 6 and sum(reporter.steps) == 6
