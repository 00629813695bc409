"""`idcbench eval` on files other IDC code writes: Spot-the-Diff ids spelled ``"256.png"`` (official CLIP4IDC ground
truth, a third-party model's predictions), FINER-MLLM's IER ground truth, CLEVR-Change ids as RCC / CLIP4IDC-style
code spells them; a mismatch names one expected and one given id; each input file is named by its role."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli import run_cli
from idcbench.errors import UserError
from idcbench.ids import align_ids

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
EXTERNAL = SHARED / "external"
SPOT = SHARED / "spot-the-diff"
DDLA = SPOT / "ddla-predictions" / "ddla_rerun_predfile.json"


def _need(*paths: Path) -> None:
    if not all(p.exists() for p in paths):
        pytest.skip("shared data absent")


def _eval(capsys, *args) -> dict:
    code, out, err = run_cli(capsys, "eval", *args, "--json", "-")
    assert code == 0, err
    return json.loads(out)["subsets"]["total"]


@pytest.mark.java
def test_third_party_png_ids_reproduce_pycocoevalcap_and_match_the_dataset(capsys):
    preds, gt = EXTERNAL / "ssgpa_spot_val_predictions.json", EXTERNAL / "finer_spot_val_gt.json"
    _need(preds, gt, SPOT / "val.json")
    # Their ground truth, their ids ("5406.png"): pycocoevalcap 1.2's numbers from SOURCES.md, x100.
    got = _eval(capsys, preds, "--references", gt)
    assert got["n"] == 1489
    expected = {"BLEU-1": 35.13238618794537, "BLEU-4": 9.57244230887461, "METEOR": 11.593845352270062,
                "ROUGE-L": 30.51227620454144, "CIDEr-D": 29.505279445410622}
    for metric, value in expected.items():
        assert got["metrics"][metric] == pytest.approx(value, abs=1e-9), metric

    # The same "5406.png" predictions against the spot-the-diff loader's val references (ids "5406"): accepted, and
    # equal to pycocoevalcap's own scorers on exactly those references (4 loader ids have no prediction).
    got = _eval(capsys, preds, "--dataset", "spot-the-diff", "--data-root", SPOT, "--split", "val",
                "--allow-partial", "-m", "bleu,rouge,cider")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from idcbench.data import load_dataset

    refs = load_dataset("spot-the-diff", SPOT).references("val")
    hyps = {r["image_id"].removesuffix(".png"): r["caption"] for r in json.loads(preds.read_text())}
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": c} for c in refs[i]] for i in hyps})
    res = tok.tokenize({i: [{"caption": c}] for i, c in hyps.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert got["n"] == 1489
    assert got["metrics"]["BLEU-4"] == pytest.approx(bleu[3] * 100, abs=1e-9)
    assert got["metrics"]["ROUGE-L"] == pytest.approx(Rouge().compute_score(gts, res)[0] * 100, abs=1e-9)
    assert got["metrics"]["CIDEr-D"] == pytest.approx(Cider().compute_score(gts, res)[0] * 100, abs=1e-9)


@pytest.mark.java
def test_official_clip4idc_ground_truth_scores_idcbench_ids(capsys):
    gt = EXTERNAL / "clip4idc_spot_test_gt.json"
    _need(gt, DDLA, SPOT / "test.json")
    # DDLA's predictions use ids "256", CLIP4IDC's ground truth "256.png": the authors' notebook numbers come back.
    got = _eval(capsys, DDLA, "--references", gt)
    assert got["n"] == 1270
    rounded = {k: round(v / 100, 3) for k, v in got["metrics"].items()}
    assert (rounded["BLEU-1"], rounded["BLEU-4"], rounded["METEOR"], rounded["ROUGE-L"], rounded["CIDEr-D"]) == (
        0.296, 0.076, 0.109, 0.280, 0.351)
    # and CLIP4IDC's references are the loader's, pair for pair
    from idcbench.data import load_dataset
    from idcbench.predictions import read_references

    official = read_references(gt)
    loader = load_dataset("spot-the-diff", SPOT).references("test")
    assert align_ids(official, loader) == loader


def test_finer_ier_ground_truth_uses_the_loader_uids():
    gt, ier = EXTERNAL / "finer_ier_test_gt.json", SHARED / "ier"
    _need(gt, ier / "test.json")
    from idcbench.data import load_dataset
    from idcbench.predictions import read_references

    ds = load_dataset("ier", ier)
    official = read_references(gt)
    assert list(official) == [e.id for e in ds.examples("test")]  # "Reddit_1052": the same spelling, same order
    assert official == ds.references("test")
    assert align_ids(official, ds.references("test"), ds.id_key) == official


def _tiny_clevr(root: Path) -> list[int]:
    scenes = [2, 15, 123]
    root.mkdir()
    (root / "splits.json").write_text(json.dumps({"train": [], "val": [], "test": scenes}))
    (root / "type_mapping.json").write_text(json.dumps({"color": ["000002.png"], "add": ["000015.png"],
                                                        "move": ["000123.png"]}))
    change = {f"CLEVR_default_{s:06d}.png": [f"the cube {s} changed", f"cube {s} is different"] for s in scenes}
    same = {f"CLEVR_default_{s:06d}.png": ["there is no change", "nothing has changed"] for s in scenes}
    (root / "change_captions.json").write_text(json.dumps(change))
    (root / "no_change_captions.json").write_text(json.dumps(same))
    return scenes


@pytest.mark.java
def test_clevr_change_spellings_of_other_code_give_the_same_scores(tmp_path, capsys):
    root = tmp_path / "clevr"
    scenes = _tiny_clevr(root)
    caption = {s: f"the cube {s} changed" for s in scenes}
    spellings = {  # (semantic id, distractor id) per scene
        "idcbench / CLIP4IDC": ("{:06d}.png", "{:06d}.png_n"),
        "file names": ("CLEVR_default_{:06d}.png", "CLEVR_nonsemantic_{:06d}.png"),
        "integers": ("{}", "{}_n"),
    }
    results = {}
    for name, (sc, nsc) in spellings.items():
        rows = [{"image_id": sc.format(s), "caption": caption[s]} for s in scenes]
        rows += [{"image_id": nsc.format(s), "caption": "no change"} for s in scenes]
        path = tmp_path / f"{len(results)}.json"
        path.write_text(json.dumps(rows))
        results[name] = _eval(capsys, path, "--dataset", "clevr-change", "--data-root", root, "-m", "bleu,cider")
    assert results["idcbench / CLIP4IDC"]["n"] == 6
    assert results["file names"] == results["integers"] == results["idcbench / CLIP4IDC"]


def test_mismatched_ids_show_one_expected_and_one_given_id(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"annotations": [{"image_id": "256", "caption": "a car left"},
                                              {"image_id": "67", "caption": "a man is gone"}]}))
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([{"image_id": "img_256", "caption": "x"}, {"image_id": "img_67", "caption": "y"}]))
    code, _, err = run_cli(capsys, "eval", preds, "--references", gt)
    line = " ".join(err.split())
    assert code == 2 and "given 'img_256', expected ids like '256'" in line, err
    preds.write_text(json.dumps([{"image_id": "256.png", "caption": "x"}]))
    code, _, err = run_cli(capsys, "eval", preds, "--references", gt)
    line = " ".join(err.split())
    assert code == 2 and "1 of 2 reference ids have no prediction (first: '67'); given ids look like '256'" in line, err
    with pytest.raises(UserError, match="'256.png' and '256' are both id '256'"):
        align_ids({"256.png": "x", "256": "y"}, ["256", "67"])


def test_each_file_is_named_by_its_role(tmp_path, capsys):
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([{"image_id": "1", "caption": "x"}]))
    code, _, err = run_cli(capsys, "eval", preds, "-r", tmp_path / "missing.json")
    assert code == 2 and "missing.json: references file not found" in err
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"annotations": [{"image_id": "1", "caption": "a b"}]}))
    code, _, err = run_cli(capsys, "eval", tmp_path / "nope.json", "-r", gt)
    assert code == 2 and "nope.json: predictions file not found" in err
    for text in ('{"1": "a red cube"}', '{\n  "1": "a red cube",\n  "2": "a blue ball"\n}\n'):
        preds.write_text(text)
        code, _, err = run_cli(capsys, "eval", preds, "-r", gt)
        line = " ".join(err.split())
        assert code == 2 and "expected a list of {image_id, caption}" in line and "invalid JSON" not in line, err
    code, _, err = run_cli(capsys, "eval", gt, "-r", gt)  # ground truth given as predictions
    assert code == 2 and "pass it as --references" in " ".join(err.split())
    preds.write_text('{"id": "1", "caption": "a b"}\n')  # a one-line JSONL file is still predictions
    code, _, err = run_cli(capsys, "eval", preds, "-r", gt, "-m", "bleu_1", "--json", "-")
    assert code == 0, err
