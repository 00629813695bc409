"""A benchmark's protocol in one place (issue 23): LEVIR-CC scored by its standard and by its authors' `rsicc` protocol,
each equal to pycocoevalcap on the same inputs, per subset, with S*m under rsicc; runs record their protocol and never
share a table with another protocol's; a toy protocol added from this one file is scored, run and tabled."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from _cli import run_cli
from idcbench.protocol import Protocol, Section, protocol_of, register

pytestmark = pytest.mark.java
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OWN_DATA = ROOT / "examples" / "own-data"
PAIRS = f"pairs:{OWN_DATA / 'pairs.jsonl'}"


def _levir_predictions(dataset, split: str) -> dict[str, str]:
    """Some pairs get a reference (scores well), the others a fixed change or no-change sentence, one with words the
    vocabulary lacks (they become <UNK> under rsicc)."""
    out = {}
    for k, e in enumerate(dataset.examples(split)):
        out[e.id] = (e.references[k % 5] if k % 3 == 0 else "many new buildings appear along the winding canal"
                     if k % 3 == 1 else "The scene is the same as before.")
    return out


@pytest.fixture(scope="module")
def levir(tmp_path_factory):
    if not (SHARED / "levir-cc").is_dir():
        pytest.skip("../shared/data/levir-cc is not here")
    from idcbench.data import load_dataset

    dataset = load_dataset("levir-cc", SHARED / "levir-cc")
    preds = _levir_predictions(dataset, "val")
    path = tmp_path_factory.mktemp("levir") / "preds.json"
    path.write_text(json.dumps([{"image_id": i, "caption": c} for i, c in preds.items()]))
    return dataset, preds, path


def _eval(capsys, path: Path, *args) -> dict:
    code, out, err = run_cli(capsys, "eval", path, "--dataset", "levir-cc", "--data-root", SHARED / "levir-cc",
                             "--split", "val", "--json", "-", *args)
    assert code == 0, err
    return json.loads(out)


def test_levir_rsicc_equals_the_authors_scoring(levir, capsys):
    from _rsicc_reference import rsicc_scores

    dataset, preds, path = levir
    got = _eval(capsys, path, "--protocol", "rsicc")
    want = rsicc_scores(dataset, "val", preds)
    assert set(got["subsets"]) == {"total", "change", "no-change"}
    for subset, metrics in want.items():
        ours = got["subsets"][subset]["metrics"]
        assert list(ours) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "S*m"]
        for metric, value in metrics.items():
            assert ours[metric] == pytest.approx(value * 100, rel=1e-12, abs=1e-12), (subset, metric)


def test_levir_standard_protocol_equals_pycocoevalcap(levir, capsys):
    from _coco_reference import coco_reference

    dataset, preds, path = levir
    got = _eval(capsys, path)  # the default: pycocoevalcap's PTB tokenizer on the text
    refs = {e.id: list(e.references) for e in dataset.examples("val")}
    subsets = {"total": list(refs), **{k: v for k, v in dataset.subsets("val").items() if k != "total"}}
    want, *_ = coco_reference(preds, refs, subsets)
    for subset, metrics in want.items():
        for metric, value in metrics.items():
            assert got["subsets"][subset]["metrics"][metric] == pytest.approx(value * 100, rel=1e-12, abs=1e-12)
    rsicc = _eval(capsys, path, "--protocol", "rsicc")
    assert rsicc["subsets"]["change"]["metrics"]["METEOR"] != got["subsets"]["change"]["metrics"]["METEOR"]


def test_levir_data_info_and_unknown_protocol(capsys):
    if not (SHARED / "levir-cc").is_dir():
        pytest.skip("../shared/data/levir-cc is not here")
    code, out, err = run_cli(capsys, "data", "info", "levir-cc", "--data-root", SHARED / "levir-cc")
    assert code == 0, err
    for count in ("6,815", "1,333", "1,929", "3,408", "666", "965"):
        assert count in out
    assert "rsicc" in out  # the protocols a dataset offers
    code, _, err = run_cli(capsys, "eval", "x.json", "--dataset", "levir-cc", "--protocol", "rsic")
    assert code == 2 and "levir-cc has no protocol 'rsic' (protocols: coco, rsicc)" in err


# ---------------------------------------------------------------------------------------- a protocol in one file
class WordsProtocol(Protocol):
    """Lower-cased words (letters only), no PTB tokenizer; BLEU-4 and CIDEr-D; a table per kind."""

    def tokenizer(self, dataset):
        return lambda captions: [" ".join(re.findall(r"[a-z]+", c.lower())) for c in captions]


WORDS = register("pairs", WordsProtocol(
    name="words", description="toy: lower-cased letter words", metrics=("BLEU-4", "CIDEr-D"),
    sections=(Section("kind", "by kind", ("kind=semantic", "kind=distractor"), all_metrics=True),),
))


def test_a_protocol_defined_in_one_file_scores_runs_and_tables(tmp_path, capsys):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    from idcbench.data import load_dataset

    assert protocol_of(PAIRS, "words") is WORDS and protocol_of(PAIRS).name == "coco"
    dataset = load_dataset(PAIRS)
    preds = {e.id: ("The red square moved!" if k % 2 else e.references[0].upper())
             for k, e in enumerate(dataset.examples("test"))}
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": i, "caption": c}) + "\n" for i, c in preds.items()))
    code, out, err = run_cli(capsys, "eval", path, "--dataset", PAIRS, "--protocol", "words", "--json", "-")
    assert code == 0, err
    got = json.loads(out)["subsets"]
    words = WORDS.tokenizer(dataset)
    for subset, ids in dataset.subsets("test").items():
        gts = {i: words(list(next(e for e in dataset.examples("test") if e.id == i).references)) for i in ids}
        res = {i: words([preds[i]]) for i in ids}
        assert got[subset]["metrics"]["BLEU-4"] == pytest.approx(Bleu(4).compute_score(gts, res, verbose=0)[0][3] * 100)
        if len(ids) > 1:
            assert got[subset]["metrics"]["CIDEr-D"] == pytest.approx(Cider().compute_score(gts, res)[0] * 100)
        assert set(got[subset]["metrics"]) == {"BLEU-4", "CIDEr-D"}  # the protocol's metric set

    runs = tmp_path / "runs"
    for protocol in ("words", None):
        args = ["run", "most-frequent", "--dataset", PAIRS, "--runs-dir", runs, "--device", "cpu", "-m", "BLEU-4"]
        assert run_cli(capsys, *args, *(["--protocol", protocol] if protocol else []))[0] == 0
    specs = [json.loads(p.read_text())["spec"] for p in runs.glob("*/*/*/run_spec.json")]
    assert sorted(s["protocol"] for s in specs) == ["coco", "words"]
    code, out, err = run_cli(capsys, "leaderboard", "--runs-dir", runs, "--out", tmp_path / "board")
    assert code == 0, err
    board = (tmp_path / "board" / "README.md").read_text()
    assert f"## {PAIRS} (test, words)" in board and f"## {PAIRS} (test)" in board  # two tables, never one
    assert "### By kind" in board  # the protocol's section
