"""most-frequent: the mode of the normalised training captions, per semantic/distractor kind, saved and reloaded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from idcbench.captioner import create_model
from idcbench.data import Example, Pair
from idcbench.models.baselines.most_frequent import MostFrequent
from idcbench.models.baselines.text import normalize_caption
from idcbench.registry import MODELS

from _baselines_toy import make_toy


def _brute_mode(captions):
    counts = Counter(normalize_caption(c) for c in captions)
    top = max(counts.values())
    return sorted(c for c, n in counts.items() if n == top)[0]


def test_mode_per_kind_and_overall(tmp_path):
    train = make_toy(tmp_path, 40, seed=0)
    model = create_model("most-frequent")
    model.fit(train, [], None)
    for kind in ("semantic", "distractor"):
        expected = _brute_mode([r for e in train if e.kind == kind for r in e.references])
        assert model.by_kind[kind] == expected
    overall = _brute_mode([r for e in train for r in e.references])
    test = make_toy(tmp_path, 4, seed=1, start=100)
    got = model.caption(test + [e.pair for e in test])
    assert got[:8] == [model.by_kind[e.kind] for e in test]
    assert got[8:] == [overall] * 8  # a Pair carries no kind: the overall mode


def test_ties_normalisation_and_no_kinds():
    ex = [Example(str(i), Path("b"), Path("a"), refs) for i, refs in enumerate([
        ("The cube moved.", "b thing"), ("the cube  moved", "B thing"), ("a cube",)])]
    m = MostFrequent()
    m.fit(ex, [], None)
    assert m.overall == "b thing" and m.by_kind == {}  # 2 vs 2: the lexicographically smallest wins
    assert m.caption([ex[0], Pair(Path("x"), Path("y"))]) == ["b thing", "b thing"]


def test_save_load_identical(tmp_path):
    train = make_toy(tmp_path / "d", 20, seed=3)
    m = create_model("most-frequent")
    m.fit(train, [], None)
    m.save(tmp_path / "m")
    again = MODELS.get("most-frequent").family.load(tmp_path / "m")
    assert again.caption(train) == m.caption(train)
    assert "floor" in again.card()


def test_empty_training_split_is_a_user_error():
    from idcbench.errors import UserError

    with pytest.raises(UserError):
        MostFrequent().fit([], [], None)
