"""leaderboard/index.html in headless Chromium: self-contained, the expected rows, the change-type chart."""

from __future__ import annotations

import re

from _chromium import Tables, chromium, dump_dom, screenshot  # noqa: F401  (chromium is a fixture)
from _fake_runs import clevr_like, predictions, write_run
from idcbench.tables import publish
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
