"""Row labels of compare and the leaderboard (`idcbench.tables.model.config_labels`): two configurations of one model
in one table get two distinct, readable labels, never cut, in every output; the CSV carries the settings that tell
them apart."""

from __future__ import annotations

import csv
import io
import json

import pytest
from _cli import run_cli
from _fake_runs import clevr_like, predictions, write_run

from idcbench.tables import publish

QWEN_3B, QWEN_7B = "Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"
SERVER = "http://127.0.0.1:18765/v1"


def _openai_runs(runs):
    ex = clevr_like(30)
    for model_id, quality in ((QWEN_3B, 0.4), (QWEN_7B, 0.7)):  # one server, two served models
        config = {"model": model_id, "base_url": SERVER, "prompt": "Describe what changed.", "max_tokens": 64}
        write_run(runs, "clevr-change", "openai", ex, predictions(ex, quality), config=config)
    write_run(runs, "clevr-change", "most-frequent", ex, {e[0]: "there is no change" for e in ex})


def test_two_served_models_get_two_full_labels_in_compare_and_the_leaderboard(tmp_path, capsys):
    runs = tmp_path / "runs"
    _openai_runs(runs)
    want = {f"openai (model={QWEN_3B})", f"openai (model={QWEN_7B})", "most-frequent"}

    code, out, _ = run_cli(capsys, "compare", "--runs-dir", runs, "--format", "json", "--resamples", "0")
    assert code == 0
    rows = json.loads(out)[0]["rows"]
    assert {r["label"] for r in rows} == want
    assert {r["label"]: r["settings"] for r in rows}[f"openai (model={QWEN_7B})"] == {"model": QWEN_7B}
    code, out, _ = run_cli(capsys, "compare", "--runs-dir", runs, "--format", "md", "--resamples", "0")
    assert code == 0 and all(f"| {label} |" in out for label in want)

    board = tmp_path / "board"
    publish.build_leaderboard(runs, board, resamples=0)
    readme, page = (board / "README.md").read_text(), (board / "index.html").read_text()
    assert all(f"| {label} |" in readme for label in want)
    assert all(f">{label}</td>" in page for label in want)  # the table cells
    assert all(f">{label}</text>" in page for label in want)  # the chart's legend, whole
    lines = [r for r in csv.DictReader(io.StringIO((board / "clevr-change.csv").read_text()))
             if r["table"] == "main" and r["metric"] == "CIDEr-D" and r["type"] == "measured"]
    assert {r["label"] for r in lines} == want
    assert {r["label"]: (r["model"], r["settings"]) for r in lines} == {
        f"openai (model={QWEN_3B})": ("openai", json.dumps({"model": QWEN_3B})),
        f"openai (model={QWEN_7B})": ("openai", json.dumps({"model": QWEN_7B})),
        "most-frequent": ("most-frequent", "")}


def test_same_file_name_in_two_folders_is_told_apart_by_its_folder(tmp_path, capsys):
    runs = tmp_path / "runs"
    ex = clevr_like(20)
    dataset = "pairs:pairs.jsonl"
    write_run(runs, dataset, "most-frequent", ex, predictions(ex, 0.1), manifest="b81110b04f78" + "0" * 52,
              data_root="/home/me/project-a")
    write_run(runs, dataset, "most-frequent", ex, predictions(ex, 0.2), manifest="0fe2c4d07a1b" + "0" * 52,
              data_root="/home/me/project-b")
    write_run(runs, dataset, "most-frequent", ex[:10], predictions(ex[:10], 0.3), manifest="77aa" * 16, limit=10,
              data_root="/home/me/project-a")
    code, out, _ = run_cli(capsys, "compare", "--runs-dir", runs, "--format", "json", "--resamples", "0")
    assert code == 0
    assert sorted(r["label"] for r in json.loads(out)[0]["rows"]) == [
        "most-frequent (limit=10, data=…/project-a)", "most-frequent (limit=all, data=…/project-a)",
        "most-frequent (limit=all, data=…/project-b)"]


def test_labels_fall_back_to_the_data_hash_and_show_only_what_differs():
    from idcbench.tables.model import config_labels

    same_folder = config_labels([("m", {"config": {"k": 1}, "manifest": "b81110b04f78aa"}),
                                 ("m", {"config": {"k": 1}, "manifest": "0fe2c4d07a1bbb"})], ["/d/x", "/d/x"])
    assert [label.text for label in same_folder] == ["m (data=b81110b0)", "m (data=0fe2c4d0)"]
    # a readable difference hides the hashes it implies (--limit changes the evaluated data)
    limited = config_labels([("m", {"limit": None, "manifest": "aa"}), ("m", {"limit": 5, "manifest": "bb"}),
                             ("k", {"limit": 5, "manifest": "bb"})])
    assert [label.text for label in limited] == ["m (limit=all)", "m (limit=5)", "k"]
    nested = config_labels([("c", {"config": {"stage2": {"lr": 0.001}, "decoding": {"beam": 1}},
                                   "decoding": {"decoding": {"beam": 1}}}),
                            ("c", {"config": {"stage2": {"lr": 0.0003}, "decoding": {"beam": 3}},
                                   "decoding": {"decoding": {"beam": 3}}})])
    assert [label.text for label in nested] == ["c (decoding.beam=1, stage2.lr=0.001)",
                                                "c (decoding.beam=3, stage2.lr=0.0003)"]


@pytest.mark.java
def test_two_openai_runs_on_one_server_end_to_end(tmp_path, capsys):
    """`idcbench run openai` twice against one loopback server, two model ids: compare and the leaderboard files
    name each run by its full model id (the server address, the same for both, is not part of a label)."""
    from PIL import Image

    from _chat_server import ChatServer, completion

    Image.new("RGB", (16, 16), (200, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (16, 16), (0, 0, 200)).save(tmp_path / "b.png")
    rows = [{"before": "a.png", "after": "b.png", "captions": ["the square turned blue"], "split": "test"}] * 3
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = ChatServer([completion("the square turned blue")],
                        models=[{"id": m, "object": "model", "root": m} for m in (QWEN_3B, QWEN_7B)])
    try:
        for model_id in (QWEN_3B, QWEN_7B):
            code, _, err = run_cli(capsys, "run", "openai", "--config", f"base_url={server.url}", "--config",
                                   f"model={model_id}", "--config", "api_key_env=null", "--dataset",
                                   "pairs:pairs.jsonl", "--data-root", tmp_path, "--runs-dir", tmp_path / "runs",
                                   "--metrics", "BLEU-4")
            assert code == 0, err
    finally:
        server.close()
    want = {f"openai (model={QWEN_3B})", f"openai (model={QWEN_7B})"}
    code, out, _ = run_cli(capsys, "compare", "--runs-dir", tmp_path / "runs", "--format", "json")
    assert code == 0 and {r["label"] for r in json.loads(out)[0]["rows"]} == want
    publish.build_leaderboard(tmp_path / "runs", tmp_path / "board", resamples=0)
    assert all(f"| {label} |" in (tmp_path / "board" / "README.md").read_text() for label in want)
    lines = list(csv.DictReader(io.StringIO((tmp_path / "board" / "pairs_pairs.jsonl.csv").read_text())))
    assert {(r["label"], r["settings"]) for r in lines} == {(f"openai (model={m})", json.dumps({"model": m}))
                                                           for m in (QWEN_3B, QWEN_7B)}
