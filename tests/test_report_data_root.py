"""`idcbench report` never writes into a data root recorded on another machine (issue 14, item 4)."""

from __future__ import annotations

import idcbench.data as data
from idcbench.report import _dataset_examples


def test_missing_recorded_root_falls_back_to_normal_resolution(tmp_path, monkeypatch):
    seen = []

    class Empty:
        def examples(self, split):
            return []

    def fake_load(name, root=None):
        seen.append(root)
        return Empty()

    monkeypatch.setattr(data, "load_dataset", fake_load)
    elsewhere = tmp_path / "other-machine" / "shapes"
    _, note = _dataset_examples({"dataset": "shapes", "split": "test"}, {"data_root": str(elsewhere)}, None)
    assert seen == [None] and "does not exist here" in note
    assert not (tmp_path / "other-machine").exists()
    here = tmp_path / "here"
    here.mkdir()
    seen.clear()
    assert _dataset_examples({"dataset": "shapes"}, {"data_root": str(here)}, None)[1] == ""
    assert seen == [here]
