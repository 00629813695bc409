"""Every registered model is label-blind: at caption time it gets the two images of a pair and nothing else.

Each model is fitted once on a small `shapes` split, then captions the test split twice through the runner's caption
stage (`caption_examples`, after `resolve_config` and `bind_run`, as `idcbench run` calls them): once with the test
split as it is, once with every test reference and tag blanked. Identical captions mean no test label reaches a model.
Models whose weights cannot be had offline are built at tiny size from the same family (the caption path is the
family's, not the size's); server families talk to a loopback server whose answer hashes everything it was sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from idcbench.captioner import FitContext, RunContext, TrainData, deep_merge
from idcbench.data import Dataset
from idcbench.registry import MODELS
from idcbench.run.caption import caption_examples
from idcbench.rundir import read_records
from idcbench.run.reporter import Reporter

pytestmark = pytest.mark.slow

TINY_CLIP = {"backbone": "idc-tiny-vit", "pretrained": "tiny", "eval_batch_size": 8,
             "stage1": {"max_steps": 2, "batch_size": 4, "val_max_pairs": 4},
             "stage2": {"max_steps": 2, "batch_size": 4, "val_max_pairs": 2}}
TINY_FEATURES = {"backbone": "idc-tiny-vit", "pretrained": "tiny", "grid_layer": -1}


class Blanked(Dataset):
    """`inner` with the references and tags of one split removed (ids and images kept)."""

    def __init__(self, inner: Dataset, split: str):
        super().__init__(inner.root)
        self.inner, self.split, self.info = inner, split, inner.info

    def splits(self):
        return self.inner.splits()

    def examples(self, split):
        ex = self.inner.examples(split)
        return [dataclasses.replace(e, references=(), tags={}) for e in ex] if split == self.split else ex

    def subsets(self, split):
        return {"total": [e.id for e in self.examples(split)]}


class _EchoHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint whose answer is a hash of the whole request body."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        text = "cube " + hashlib.sha256(body).hexdigest()[:12]
        out = json.dumps({"id": "x", "object": "chat.completion", "model": "echo",
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": text}}],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from idcbench.datasets import shapes
    from idcbench.datasets.clevr_change import CLEVRChange

    root = shapes.synthesize(tmp_path_factory.mktemp("shapes") / "data", scenes=20, size=64, seed=0, workers=1)
    return CLEVRChange.load(root)


@pytest.fixture(scope="module")
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _overrides(family: str, tiny_vlm: Path, echo: str) -> dict:
    """How each family is built small and offline; a new family must be added here (no silent default)."""
    duda = {**MODELS.get("duda-tiny").config, **TINY_FEATURES, "epochs": 1, "val_max_examples": 4}
    table = {
        "Clip4IDC": TINY_CLIP,
        "NearestNeighbour": {**MODELS.get("nearest-neighbour-tiny").config, **TINY_FEATURES},
        "DUDA": duda,
        "MostFrequent": {},
        "OpenAICompatible": {"base_url": echo, "model": "echo", "api_key_env": None, "concurrency": 2},
        # a tiny model of a real architecture; the fine-tuning variants (finetune: lora / full) train it 2 steps
        "TransformersVLM": {"model": str(tiny_vlm), "max_new_tokens": 6, "micro_batch_size": 4,
                            "train": {"max_steps": 2, "batch_size": 4, "val_max_pairs": 2}},
    }
    if family not in table:
        pytest.fail(f"{family}: say in _overrides how this family is built small and offline")
    return table[family]


def _captions(model, dataset: Dataset, run_dir: Path) -> list[str]:
    run_dir.mkdir(parents=True)
    model.bind_run(RunContext(run_dir, TrainData.of(dataset)))
    out = run_dir / "predictions.jsonl"
    caption_examples(model, dataset.examples("test"), out, batch_size=4, done={}, reporter=Reporter())
    return [row["caption"] for row in read_records(out)]


@pytest.mark.parametrize("name", MODELS.names())
def test_captions_do_not_depend_on_test_labels(name, dataset, tiny_vlm, echo_server, tmp_path):
    import torch

    spec = MODELS.get(name)
    family = spec.family.__name__
    requested = deep_merge(spec.config, _overrides(family, tiny_vlm, echo_server))
    config = spec.family.resolve_config(requested, TrainData.of(dataset))
    assert spec.family.resolve_config(requested, TrainData.of(Blanked(dataset, "test"))) == config  # nothing pinned from test labels
    torch.manual_seed(0)
    model = spec.family(config)
    assert model.trainable == spec.family.trains(config)  # what the runner reads to decide whether to train
    if model.trainable:
        model.fit(dataset.examples("train"), dataset.examples("val"), FitContext(workdir=tmp_path / "fit"))
        if family == "TransformersVLM":  # it did fine-tune: the captions below come from the trained weights
            assert (tmp_path / "fit" / "done").exists() and (tmp_path / "fit" / "val_log.jsonl").exists()
    seen = _captions(model, dataset, tmp_path / "labelled")
    blind = _captions(model, Blanked(dataset, "test"), tmp_path / "blanked")
    assert len(seen) == len(dataset.examples("test")) and seen == blind
    if "base_url" in config:
        assert all(c.startswith("cube ") for c in seen)  # the loopback server answered every pair
