"""leaderboard/index.html in headless Chromium: self-contained, the expected rows, the change-type chart."""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import unquote

from _chromium import Tables, chromium, dump_dom, screenshot  # noqa: F401  (chromium is a fixture)
from _fake_runs import clevr_like, predictions, write_run
from idcbench import demo
from idcbench.report import build_report
from idcbench.tables import publish
from idcbench.tables.runs import load_run
from idcbench.published import published


def test_leaderboard_page_in_chromium(chromium, tmp_path):  # noqa: F811
    ex = clevr_like(80)
    runs = tmp_path / "runs"
    for s in (0, 1):
        write_run(runs, "clevr-change", "clip4idc-tiny", ex, predictions(ex, 0.8, seed=s), seed=s)
    write_run(runs, "clevr-change", "most-frequent", ex, {e[0]: "there is no change" for e in ex})
    write_run(runs, "shapes", "nearest-neighbour", ex[:30], predictions(ex[:30], 0.5))
    out = tmp_path / "leaderboard"
    publish.build_leaderboard(runs, out, resamples=100)
    page = out / "index.html"
    html = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from the network

    dom, log = dump_dom(chromium, page, tmp_path)
    assert "Uncaught" not in log  # the inline scripts ran without errors
    doc = Tables(dom)
    main = doc.by("id", "clevr-change-test-main")
    header, *rows = [r["cells"] for r in main["rows"]]
    assert header[:4] == ["Model", "Type", "Seeds", "n"] and "CIDEr-D" in header
    measured = [r for r in rows if r[1] == "measured"]
    assert [r[0] for r in measured] == ["clip4idc-tiny", "most-frequent"]  # ordered by CIDEr-D
    assert measured[0][2] == "2 (0, 1)" and measured[1][2] == "1 (0)" and re.fullmatch(r"[\d.]+ ± [\d.]+ \[[\d.]+, [\d.]+\]", measured[0][header.index("CIDEr-D")])
    pub_rows = [r for r in rows if r[1].startswith("published")]
    assert "DUDA (ICCV 2019)" in [r[0] for r in pub_rows] and len(pub_rows) == len(published("clevr-change"))
    types = doc.by("id", "clevr-change-test-types")
    assert [r["cells"] for r in types["rows"]][0][3:8] == ["color", "material", "add", "drop", "move"]
    shapes = [r["cells"] for r in doc.by("id", "shapes-test-main")["rows"]][1:]
    assert [r[0] for r in shapes] == ["nearest-neighbour"]
    # the SVG chart: one bar per (measured model, change type) with data; sortable headers
    bars = [t for t in doc.tags.get("rect", []) if "fill" in t and t.get("width") != "10"]
    assert len(bars) >= 2 * 5
    assert all("sortable" in t["attrs"].get("class", "") for t in doc.tables)

    png = screenshot(chromium, page, tmp_path / "leaderboard.png", tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Sorting: a click on the ROUGE-L header orders the rows by it, descending; missing values go last.
    col = header.index("ROUGE-L")
    click = (f"<script>document.querySelector('#clevr-change-test-main thead th:nth-child({col + 1})').click();"
             "</script>\n</body>")
    clicked = tmp_path / "clicked.html"
    clicked.write_text(html.replace("</body>", click, 1))
    rows = [r["cells"] for r in Tables(dump_dom(chromium, clicked, tmp_path)[0]).by("id", "clevr-change-test-main")["rows"]][1:]
    values = [float(r[col].split()[0]) for r in rows if r[col] != "–"]
    reported = sum(p.value("ROUGE-L") is not None for p in published("clevr-change"))
    assert values == sorted(values, reverse=True) and len(values) == 2 + reported
    assert all(r[col] == "–" for r in rows[len(values):])


def _report_links(dom: str) -> list[tuple[str, str]]:
    """(href, row label) of every link in a table's label cell."""
    return re.findall(r'<td class="label"[^>]*><a href="([^"]+)"[^>]*>([^<]+)</a></td>', dom)


def test_leaderboard_rows_link_the_reports_beside_it(chromium, tmp_path):  # noqa: F811
    ex = clevr_like(40)
    runs = tmp_path / "runs"
    seed0 = write_run(runs, "clevr-change", "clip4idc-tiny", ex, predictions(ex, 0.8, seed=0), seed=0)
    write_run(runs, "clevr-change", "clip4idc-tiny", ex, predictions(ex, 0.8, seed=1), seed=1)
    write_run(runs, "clevr-change", "most-frequent", ex, {e[0]: "there is no change" for e in ex})
    out = tmp_path / "board"
    out.mkdir()
    # any name works: the page says which run it is about
    report = build_report(seed0, out / "clip4idc tiny, seed 0.html", max_examples=4, data_root=tmp_path / "none")
    (out / "notes.html").write_text("<!DOCTYPE html><p>not a report</p>")
    publish.build_leaderboard(runs, out, resamples=0)

    dom, log = dump_dom(chromium, out / "index.html", tmp_path)
    assert "Uncaught" not in log
    links = _report_links(dom)
    # the clip4idc-tiny row of each table (main, per change type, semantic and distractor), nothing else
    assert [label for _, label in links] == ["clip4idc-tiny", "clip4idc-tiny", "clip4idc-tiny · semantic",
                                             "clip4idc-tiny · distractor"]
    assert {href for href, _ in links} == {"clip4idc%20tiny%2C%20seed%200.html"}
    target = out / unquote(links[0][0])
    assert target == report and target.is_file()
    page = dump_dom(chromium, target, tmp_path)[0]  # the link opens the report of that very run
    assert f'content="{load_run(seed0).spec_hash}"' in page and "<h1>clip4idc-tiny on clevr-change (test)</h1>" in page
    readme = (out / "README.md").read_text()
    assert "| [clip4idc-tiny](clip4idc%20tiny%2C%20seed%200.html) | measured | 2 (0, 1) |" in readme
    assert "| most-frequent | measured |" in readme

    # the links are part of what --check compares: a removed report makes the page stale
    assert publish.check_leaderboard(runs, out, resamples=0) == []
    report.unlink()
    assert publish.check_leaderboard(runs, out, resamples=0) == [f"{out / 'README.md'}: differs from what the runs give",
                                                               f"{out / 'index.html'}: differs from what the runs give"]
    publish.build_leaderboard(runs, out, resamples=0)
    assert _report_links((out / "index.html").read_text()) == []
    assert "[clip4idc-tiny](" not in (out / "README.md").read_text()


def test_demo_writes_the_report_before_the_leaderboard_that_links_it(tmp_path, monkeypatch):
    ex = clevr_like(30)

    def fake_run(req, reporter):  # the demo's runs, without training: fake run directories
        run_dir = write_run(req.runs_dir, "demo-data", req.model, ex, predictions(ex, 0.5, seed=len(req.model)))
        return SimpleNamespace(run_dir=run_dir, spec=SimpleNamespace(model=req.model))

    monkeypatch.setattr(demo, "run", fake_run)
    result = demo.run_demo(tmp_path / "runs", tmp_path / "board", models=[("most-frequent", {}), ("clip4idc-tiny", {})],
                           resamples=0)
    assert result.report == tmp_path / "board" / "report-clip4idc-tiny.html"
    links = _report_links((tmp_path / "board" / "index.html").read_text())
    assert links and all(href == result.report.name and label.startswith("clip4idc-tiny") for href, label in links)



MEASURE = """<script>
var out = [];
document.querySelectorAll('svg.chart').forEach(function (svg) {
  var w = svg.width.baseVal.value, h = svg.height.baseVal.value;
  svg.querySelectorAll('text').forEach(function (t) {
    var b = t.getBBox();
    out.push({text: t.textContent, right: b.x + b.width, bottom: b.y + b.height, width: w, height: h});
  });
});
var pre = document.createElement('pre'); pre.id = 'measured'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>
</body>"""


def test_chart_legend_shows_every_label_whole_inside_the_chart(chromium, tmp_path):  # noqa: F811
    import html as html_lib
    import json

    ex = clevr_like(30)
    runs = tmp_path / "runs"
    ids = ["Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", "llava-hf/llava-onevision-qwen2-7b-ov-hf",
           "OpenGVLab/InternVL2_5-8B-MPO"]
    for k, model_id in enumerate(ids):
        write_run(runs, "pairs:pairs.jsonl", "openai", ex, predictions(ex, 0.2 + 0.1 * k, seed=k),
                  config={"model": model_id})
    for name in ("most-frequent", "nearest-neighbour"):
        write_run(runs, "pairs:pairs.jsonl", name, ex, predictions(ex, 0.3))
    out = tmp_path / "board"
    publish.build_leaderboard(runs, out, resamples=0)
    page = out / "measure.html"
    page.write_text((out / "index.html").read_text().replace("</body>", MEASURE, 1))
    dom, log = dump_dom(chromium, page, tmp_path)
    assert "Uncaught" not in log
    texts = json.loads(html_lib.unescape(dom.split('<pre id="measured">')[1].split("</pre>")[0]))
    legend = {t["text"] for t in texts}
    assert {f"openai (model={i})" for i in ids} | {"most-frequent", "nearest-neighbour"} <= legend  # never cut
    clipped = [t for t in texts if t["right"] > t["width"] or t["bottom"] > t["height"]]
    assert not clipped, clipped
    assert "#pairspairsjsonl-test" in (out / "README.md").read_text()  # GitHub's anchor of the heading
