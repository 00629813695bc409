"""Checks a user can fail happen before any work (issue 14, items 6-9), and the run-directory lock (item 1)."""

from __future__ import annotations

import threading
import time

import pytest

from idcbench.errors import UserError
from idcbench.run.lock import hold
from idcbench.run.reporter import Reporter
from idcbench.run.request import RunRequest, prepare


def _no_data(monkeypatch):
    import idcbench.run.request as request

    def fail(*a, **k):
        raise AssertionError("the dataset was loaded before the request was validated")

    monkeypatch.setattr(request, "open_dataset", fail)


def test_unknown_metric_is_refused_before_the_data(monkeypatch, tmp_path):
    _no_data(monkeypatch)
    with pytest.raises(UserError, match="NOSUCH"):
        prepare(RunRequest("most-frequent", "shapes", metrics=["NOSUCH"], runs_dir=tmp_path), device="cpu")
    with pytest.raises(UserError, match="no metric names"):
        prepare(RunRequest("most-frequent", "shapes", metrics=[","], runs_dir=tmp_path), device="cpu")


@pytest.mark.parametrize("model,key,hint", [("duda-tiny", "epoch", "epochs"), ("nearest-neighbour-tiny", "kk", None),
                                            ("clip-diff-tiny", "stage2.lrr", "stage2.lr")])
def test_unknown_config_key_is_refused_before_the_run_dir(monkeypatch, tmp_path, model, key, hint):
    from idcbench.run.request import parse_config

    _no_data(monkeypatch)
    with pytest.raises(UserError) as e:
        prepare(RunRequest(model, "shapes", config=parse_config([f"{key}=1"]), runs_dir=tmp_path), device="cpu")
    assert str(e.value).startswith(f"{model}: unknown config key {key!r}")
    assert "clip4idc" not in str(e.value)
    if hint:
        assert f"did you mean {hint!r}" in str(e.value)
    assert not any(tmp_path.iterdir())


def test_splits_must_sum_to_one():
    from idcbench.datasets import shapes

    with pytest.raises(UserError, match="add up to 1.2"):
        shapes.parse_splits("0.5,0.6,0.1")
    assert shapes.parse_splits("0.5,0.4,0.1") == (0.5, 0.4, 0.1)


def test_caption_without_init_on_a_trainable_model_is_refused():
    from idcbench.commands.caption import load_captioner

    with pytest.raises(UserError, match="--init"):
        load_captioner("duda-tiny", None, {})


class _Messages(Reporter):
    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)


def test_a_second_holder_waits_and_says_so(tmp_path):
    order, msgs = [], _Messages()

    def second():
        with hold(tmp_path, reporter=msgs):
            order.append("second")

    with hold(tmp_path):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        order.append("first released")
    t.join(10)
    assert order == ["first released", "second"]
    assert len(msgs.lines) == 1 and "in use by process" in msgs.lines[0] and "waiting" in msgs.lines[0]
