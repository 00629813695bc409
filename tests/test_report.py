"""`idcbench report RUN_DIR`: the self-contained HTML page, with and without the dataset's images, in headless
Chromium."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _chromium import Tables, chromium, dump_dom, screenshot  # noqa: F401  (chromium is a fixture)
from _fake_runs import clevr_like, predictions, write_run
from idcbench.cli import main
from idcbench.data import Dataset, DatasetInfo, Example
from idcbench.registry import DATASETS
from idcbench.report import pick_examples, render_report

NAME = "report-toy"


class ReportToy(Dataset):
    """examples.json + PNGs under root; one split, test."""

    info = DatasetInfo(NAME, "report test data", "-", "-", "examples.json, images/*.png")

    @classmethod
    def load(cls, root: Path) -> "ReportToy":
        return cls(root)

    def splits(self) -> list[str]:
        return ["test"]

    def examples(self, split: str) -> list[Example]:
        self.check_split(split)
        rows = json.loads((self.root / "examples.json").read_text())
        return [Example(r["id"], self.root / r["before"], self.root / r["after"], tuple(r["refs"]), r["tags"])
                for r in rows]


if NAME not in DATASETS:
    DATASETS.add(NAME, ReportToy, description="report test data")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    (data / "images").mkdir(parents=True)
    ex = clevr_like(40)
    rng = np.random.default_rng(0)
    rows = []
    for eid, refs, tags in ex:
        for side in ("before", "after"):
            img = rng.integers(0, 255, size=(48, 72, 3), dtype=np.uint8)
            Image.fromarray(img).save(data / "images" / f"{eid}_{side}.png")
        rows.append({"id": eid, "before": f"images/{eid}_before.png", "after": f"images/{eid}_after.png",
                     "refs": refs, "tags": tags})
    (data / "examples.json").write_text(json.dumps(rows))
    return write_run(root / "runs", NAME, "some-model", ex, predictions(ex, 0.5, seed=3), data_root=str(data),
                     retrieval=RETRIEVAL)


# metrics.json's retrieval block as the runner writes it: counts are floats, keys in no useful order
RETRIEVAL = {"t2p_R@10": 35.0, "t2p_R@1": 5.0, "t2p_R@5": 20.0, "t2p_MedR": 12.5, "t2p_MeanR": 14.05,
             "p2t_R@10": 45.0, "p2t_R@1": 10.0, "p2t_R@5": 30.0, "p2t_MedR": 11.0, "p2t_MeanR": 12.25,
             "n_captions": 60.0, "n_pairs": 20.0, "subset": "semantic"}


def _samples(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "per_sample.jsonl").read_text().splitlines()]


def test_pick_examples_takes_worst_and_best_of_each_type(run):
    samples = _samples(run)
    ids = pick_examples(samples, 2)
    by_id = {s["id"]: s for s in samples}
    groups = {}
    for s in samples:
        groups.setdefault(s["tags"]["type"], []).append(s)
    for name, members in groups.items():
        ranked = sorted(members, key=lambda s: (s["scores"]["CIDEr-D"], s["id"]))
        want = {s["id"] for s in ranked[:2] + ranked[-2:]}
        assert want == {i for i in ids if by_id[i]["tags"]["type"] == name}


def test_report_page_in_chromium(run, chromium, tmp_path):  # noqa: F811
    out = tmp_path / "report.html"
    with pytest.raises(SystemExit) as e:
        main(["report", str(run), "--out", str(out), "--examples", "24"])
    assert e.value.code == 0
    html = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)

    dom, log = dump_dom(chromium, out, tmp_path)
    assert "Uncaught" not in log
    doc = Tables(dom)
    metrics = json.loads((run / "metrics.json").read_text())
    table = [r["cells"] for r in doc.by("id", "metrics")["rows"]]
    header, rows = table[0], table[1:]
    assert [r[0] for r in rows] == ["total", "semantic", "distractor", "color", "material", "add", "drop", "move"]
    for r in rows:
        sub = metrics["subsets"][r[0]]
        assert int(r[1]) == sub["n"]
        assert r[header.index("CIDEr-D")] == f"{sub['metrics']['CIDEr-D']:.1f}"
    cards = [t for t in doc.tags["div"] if "ex" in t.get("class", "").split()]
    imgs = [t for t in doc.tags.get("img", []) if t.get("src", "").startswith("data:image/png;base64,")]
    assert 12 <= len(cards) <= 24 and len(imgs) == 2 * len(cards)
    scores = [float(c["data-score"]) for c in cards]
    assert scores == sorted(scores)  # worst first after the page script ran
    options = [t.get("value") for t in doc.tags["option"]]
    assert {"color", "material", "add", "drop", "move", "distractor"} <= set(options)
    assert "no-images" not in dom

    # retrieval: one row per direction, integer counts, R@1, R@5, R@10 in that order, one header style
    header, *rows = [r["cells"] for r in doc.by("id", "retrieval")["rows"]]
    assert header == ["direction", "queries", "candidates", "R@1", "R@5", "R@10", "MedR", "MeanR"]
    assert rows == [["text → pair", "60", "20", "5.0", "20.0", "35.0", "12.5", "14.1"],
                    ["pair → text", "20", "20", "10.0", "30.0", "45.0", "11.0", "12.2"]]
    assert "semantic pairs" in dom

    png = screenshot(chromium, out, tmp_path / "report.png", tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Filter to one change type, best first: only those cards stay visible, in descending CIDEr-D.
    script = ("<script>var f = document.getElementById('filter'), o = document.getElementById('order');"
              "f.value = 'color'; o.value = 'best'; f.dispatchEvent(new Event('change'));</script>\n</body>")
    filtered = tmp_path / "filtered.html"
    filtered.write_text(html.replace("</body>", script, 1))
    dom = dump_dom(chromium, filtered, tmp_path)[0]
    cards = [t for t in Tables(dom).tags["div"] if "ex" in t.get("class", "").split()]
    visible = [c for c in cards if "display: none" not in c.get("style", "")]
    assert visible and all(c["data-group"] == "color" for c in visible)
    assert len(cards) - len(visible) == sum(c["data-group"] != "color" for c in cards)
    shown = [float(c["data-score"]) for c in visible]
    assert shown == sorted(shown, reverse=True)


def test_report_without_images_says_so(run, tmp_path):
    html = render_report(run, data_root=tmp_path / "nowhere", max_examples=10)
    assert 'id="no-images"' in html and "<img" not in html
    assert "nothing has changed" in html  # references still shown (the scorer's tokenized ones; never predicted)


# For every card, after layout: where the score badge and the caption are, and what selecting the whole card copies.
PROBE = """<script>
var out = [];
document.querySelectorAll('#examples .ex').forEach(function (card) {
  var badge = card.querySelector('.score'), text = card.querySelector('.txt');
  var caption = card.querySelector('.caption') || card.querySelector('.pred');  // .pred: the page before the badge moved
  var b = badge.getBoundingClientRect(), t = text.getBoundingClientRect(), sel = getSelection();
  sel.removeAllRanges(); sel.selectAllChildren(card);
  out.push({id: card.dataset.id, badge: badge.textContent, caption: caption.textContent, copied: sel.toString(),
            inText: text.contains(badge), overlap: !(b.right <= t.left || b.left >= t.right || b.bottom <= t.top
                                                      || b.top >= t.bottom)});
});
var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>
</body>"""


def test_score_badge_is_its_own_element_beside_the_caption(run, chromium, tmp_path):  # noqa: F811
    page = tmp_path / "report.html"
    html = render_report(run, max_examples=12)
    page.write_text(html.replace("</body>", PROBE, 1))
    dom = dump_dom(chromium, page, tmp_path)[0]
    cards = json.loads(unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    by_id = {s["id"]: s for s in _samples(run)}
    assert len(cards) >= 6
    for c in cards:
        score = by_id[c["id"]]["scores"]["CIDEr-D"] * 100
        assert c["caption"] == by_id[c["id"]]["prediction"]  # the caption element holds the caption and nothing else
        assert c["badge"] == f"CIDEr-D{score:.1f}"
        assert not c["inText"] and not c["overlap"]  # a column of its own, not floated into the text
        assert c["caption"] in c["copied"] and "CIDEr-D" not in c["copied"] and "prediction" not in c["copied"]

