"""most-frequent: the mode of the normalised training captions, one caption for every pair, saved and reloaded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from idcbench.factory import create_model
from idcbench.data import Example, Pair
from idcbench.models.baselines.most_frequent import MostFrequent
from idcbench.models.baselines.text import normalize_caption
from idcbench.registry import MODELS

from _baselines_toy import make_toy


def _brute_mode(captions):
    counts = Counter(normalize_caption(c) for c in captions)
    top = max(counts.values())
    return sorted(c for c, n in counts.items() if n == top)[0]


def test_one_caption_for_every_pair(tmp_path):
    train = make_toy(tmp_path, 40, seed=0)
    model = create_model("most-frequent")
    model.fit(train, [], None)
    overall = _brute_mode([r for e in train for r in e.references])
    assert model.overall == overall
    test = make_toy(tmp_path, 4, seed=1, start=100)
    assert model.caption([e.pair for e in test]) == [overall] * len(test)


def test_no_per_kind_key():
    from idcbench.errors import UserError

    with pytest.raises(UserError, match="per_kind"):
        create_model("most-frequent", per_kind=True)


def test_ties_and_normalisation():
    ex = [Example(str(i), Path("b"), Path("a"), refs) for i, refs in enumerate([
        ("The cube moved.", "b thing"), ("the cube  moved", "B thing"), ("a cube",)])]
    m = MostFrequent()
    m.fit(ex, [], None)
    assert m.overall == "b thing"  # 2 vs 2: the lexicographically smallest wins
    assert m.caption([ex[0].pair, Pair(Path("x"), Path("y"))]) == ["b thing", "b thing"]


def test_save_load_identical(tmp_path):
    train = make_toy(tmp_path / "d", 20, seed=3)
    m = create_model("most-frequent")
    m.fit(train, [], None)
    m.save(tmp_path / "m")
    again = MODELS.get("most-frequent").family.load(tmp_path / "m")
    assert again.caption([e.pair for e in train]) == m.caption([e.pair for e in train])
    assert "floor" in again.card()


def test_empty_training_split_is_a_user_error():
    from idcbench.errors import UserError

    with pytest.raises(UserError):
        MostFrequent().fit([], [], None)


SPOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "spot-the-diff"


@pytest.mark.java
def test_spot_the_diff_floor_is_the_most_frequent_real_sentence(tmp_path, capsys):
    """Spot-the-Diff's train split holds 53 empty sentences, more than any real one: the floor must not predict ''."""
    import json
    import shutil

    from _cli import run_cli

    if not (SPOT / "train.json").exists():
        pytest.skip("../shared/data/spot-the-diff absent")
    for split in ("train", "val", "test"):
        shutil.copy(SPOT / f"{split}.json", tmp_path / f"{split}.json")  # no images: most-frequent never looks
    counts = Counter(normalize_caption(s) for rec in json.loads((SPOT / "train.json").read_text())
                     for s in rec["sentences"])
    assert counts[""] == 53 and counts.most_common(2)[1] == ("there is more people", 35)
    code, _, err = run_cli(capsys, "run", "most-frequent", "--dataset", "spot-the-diff", "--data-root", tmp_path,
                           "--limit", "5", "--metrics", "BLEU-4", "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    run = next((tmp_path / "runs" / "spot-the-diff" / "most-frequent").iterdir())
    captions = {json.loads(line)["caption"] for line in (run / "predictions.jsonl").read_text().splitlines()}
    assert captions == {"there is more people"}
    assert json.loads((run / "model" / "state.json").read_text()) == {"overall": "there is more people", "count": 35}


def test_only_empty_references_is_a_user_error():
    from idcbench.errors import UserError

    with pytest.raises(UserError, match="every training reference is empty"):
        MostFrequent().fit([Example("0", Path("b"), Path("a"), ("", " . "))], [], None)
