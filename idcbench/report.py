"""`idcbench report RUN_DIR`: one self-contained HTML page for a run.

The page holds the run spec, the metric table per subset (and retrieval), and a browsable sample of examples:
before / after thumbnails side by side (PNG, base64-embedded), the prediction, the references and the per-example
CIDEr-D, worst and best first, filterable by change type. Images come from the dataset named in
``run_spec.json`` (its recorded data root, or `data_root`); when they cannot be read the page is written without
thumbnails and says why.

>>> pick_examples([{"id": "a", "scores": {"CIDEr-D": 0.1}}, {"id": "b", "scores": {"CIDEr-D": 0.9}}], 1)
['a', 'b']
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from idcbench.errors import UserError
from idcbench.rundir import load_samples, read_curves, read_env, read_spec
from idcbench.tables.html import RUN_META, curves_svg, esc, page
from idcbench.metrics import too_small
from idcbench.protocol import Protocol
from idcbench.tables.model import MARKS, TOO_SMALL, metric_order, too_small_note
from idcbench.tables.runs import load_run

DEFAULT_EXAMPLES = 120
THUMB_PX = 96
SCORE = "CIDEr-D"


def example_group(sample: Mapping[str, Any]) -> str:
    """The filter group of a sample: its change type, else its kind, else ``all``."""
    tags = sample.get("tags") or {}
    return str(tags.get("type") or tags.get("kind") or "all")


def _score(sample: Mapping[str, Any]) -> float | None:
    v = (sample.get("scores") or {}).get(SCORE)
    return None if v is None else float(v)


def pick_examples(samples: Sequence[Mapping[str, Any]], per_group: int) -> list[str]:
    """Ids to show: in every change-type group, the `per_group` worst and `per_group` best by CIDEr-D (ties by
    id), worst first. Deterministic."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for s in samples:
        groups.setdefault(example_group(s), []).append(s)
    chosen: list[str] = []
    seen: set[str] = set()
    for name in sorted(groups):
        ranked = sorted(groups[name], key=lambda s: (_score(s) if _score(s) is not None else -1.0, str(s["id"])))
        for s in ranked[:per_group] + ranked[::-1][:per_group]:
            if str(s["id"]) not in seen:
                seen.add(str(s["id"]))
                chosen.append(str(s["id"]))
    return chosen


def thumbnail_data_uri(path: str | Path, size: int = THUMB_PX, *, example_id: str | None = None) -> str:
    """A PNG thumbnail (longest side `size` px) as a ``data:`` URI."""
    from PIL import Image

    from idcbench.data import load_image

    img = load_image(path, example_id=example_id)
    img.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _dataset_examples(spec: Mapping[str, Any], run_spec: Mapping[str, Any],
                      data_root: str | Path | None) -> tuple[dict[str, Any], str]:
    """id -> Example of the run's split, and '' or the reason why the dataset could not be read."""
    from idcbench.data import by_id, load_dataset, recorded_root

    name, split = spec.get("dataset"), spec.get("split", "test")
    if not name:
        return {}, "run_spec.json names no dataset"
    note = ""
    root = data_root
    if root is None:  # never write (e.g. generate shapes) into a path recorded on another machine
        root, note = recorded_root(str(name), run_spec.get("data_root"))
    try:
        ds = load_dataset(str(name), root)
        return by_id(ds.examples(str(split))), note
    except UserError as e:
        return {}, str(e)
    except Exception as e:  # a loader failing on a moved or partial data folder must not block the report
        return {}, f"{type(e).__name__}: {e}"


def render_report(run_dir: str | Path, *, max_examples: int = DEFAULT_EXAMPLES, thumb: int = THUMB_PX,
                  data_root: str | Path | None = None) -> str:
    """The report page of a run directory as HTML text."""
    run = load_run(run_dir)
    run_dir = Path(run_dir)
    raw_spec, env = read_spec(run_dir), read_env(run_dir)
    try:
        samples = load_samples(run_dir)
    except UserError as e:
        samples, samples_note = [], str(e)
    else:
        samples_note = ""

    body = [f"<h1>{esc(run.model)} on {esc(run.dataset)} ({esc(run.split)})</h1>",
            f'<p class="muted">seed {esc(run.seed)} · spec {esc(run.spec_hash[:16])} · {esc(run_dir)}</p>']
    body.append("<h2>Scores</h2>")
    body.append(_metrics_table(run.metrics, run.protocol))
    unavailable = run.metrics.get("unavailable") or {}
    if unavailable:
        body.append('<p class="note">Not available: ' + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in
                                                                sorted(unavailable.items())) + "</p>")
    retrieval = run.metrics.get("retrieval") or {}
    if retrieval:
        body.append("<h3>Retrieval</h3>" + _retrieval_table(retrieval))
    curves = read_curves(run_dir)
    if curves:
        body.append("<h2>Training</h2>" + curves_svg({run.model: curves})
                    + '<p class="note">Validation score after each epoch against training steps (the checkpoint kept is '
                      'the best one on val).</p>')

    body.append("<h2>Examples</h2>")
    if samples_note:
        body.append(f'<p class="note" id="no-examples">{esc(samples_note)}</p>')
    else:
        per_group = max(1, max_examples // (2 * max(1, len({example_group(s) for s in samples}))))
        ids = pick_examples(samples, per_group)
        examples, why = _dataset_examples(run.spec, raw_spec, data_root)
        body.append(_examples_section(samples, ids, examples, why, thumb))

    body.append("<h2>Run</h2>")
    body.append("<details open><summary>run_spec.json</summary><pre>" + esc(json.dumps(raw_spec, indent=2, sort_keys=True))
                + "</pre></details>")
    if env:
        body.append("<details><summary>env.json</summary><pre>" + esc(json.dumps(env, indent=2, sort_keys=True))
                    + "</pre></details>")
    return page(f"idcbench report: {run.model} on {run.dataset}", "\n".join(body), extra_css=REPORT_CSS,
                script=FILTER_JS, meta={RUN_META: run.spec_hash})


def build_report(run_dir: str | Path, out: str | Path | None = None, **kwargs: Any) -> Path:
    """Write the report of `run_dir` to `out` (default ``report.html``) and return its path."""
    from idcbench.files import write_atomic

    out = Path(out) if out is not None else Path("report.html")
    text = render_report(run_dir, **kwargs)
    write_atomic(out, text.encode("utf-8"))
    return out


def _metrics_table(metrics: Mapping[str, Any], protocol: Protocol) -> str:
    subsets = metrics.get("subsets") or {}
    present: set[str] = set()
    for sub in subsets.values():
        present.update(k for k, v in (sub.get("metrics") or {}).items() if v is not None)
    cols = sorted(present, key=metric_order)
    head = "".join(f"<th>{esc(c)}</th>" for c in ["subset", "n", *cols])
    rows, flagged = [], []
    for name in protocol.order_subsets(list(subsets)):
        sub = subsets[name]
        vals = sub.get("metrics") or {}
        tds = [f'<td class="label">{esc(name)}</td>', f'<td data-v="{sub.get("n", "")}">{esc(sub.get("n", "–"))}</td>']
        for c in cols:
            v = vals.get(c)
            if v is not None and too_small(c, sub.get("n")) is not None:  # e.g. CIDEr-D of one example: 0 by definition
                tds.append(f'<td data-v="" class="flag">{esc(MARKS[TOO_SMALL])}</td>')
                flagged += [c] if c not in flagged else []
            else:
                tds.append('<td data-v="">–</td>' if v is None else f'<td data-v="{float(v):.6f}">{float(v):.1f}</td>')
        rows.append(f'<tr data-subset="{esc(name)}">' + "".join(tds) + "</tr>")
    notes = "".join(f'<p class="note">{esc(too_small_note(c))}</p>' for c in flagged)
    return (f'<table class="sortable" id="metrics"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(rows)
            + '\n</tbody></table><p class="note">Corpus scores x100, each subset scored as its own corpus.</p>'
            + notes)


RETRIEVAL_DIRECTIONS = (("t2p", "text → pair"), ("p2t", "pair → text"))
RETRIEVAL_KS = ("R@1", "R@5", "R@10")
RETRIEVAL_RANKS = ("MedR", "MeanR")


def _count(v: Any) -> str:
    """A count as an integer (metrics.json stores them as floats); anything else as given."""
    if isinstance(v, (int, float)) and float(v).is_integer():
        return str(int(v))
    return "–" if v is None else esc(v)


def _retrieval_table(retrieval: Mapping[str, Any]) -> str:
    """One row per direction: queries, candidates, R@1 / R@5 / R@10 (%), median and mean rank.

    >>> import re
    >>> html = _retrieval_table({"t2p_R@10": 7.06, "t2p_R@1": 0.33, "t2p_R@5": 3.89, "n_captions": 1800.0,
    ...                          "n_pairs": 300.0})
    >>> re.findall(r"<t[hd](?: [^>]*)?>([^<]*)<", html)
    ['direction', 'queries', 'candidates', 'R@1', 'R@5', 'R@10', 'MedR', 'MeanR', 'text → pair', '1800', '300', '0.3', '3.9', '7.1', '–', '–']
    """
    n_pairs, n_captions = retrieval.get("n_pairs"), retrieval.get("n_captions")
    # pairs without references are left out before ranking, so every pair left is a pair -> text query
    counts = {"t2p": (n_captions, n_pairs), "p2t": (n_pairs, n_pairs)}
    cols = [*RETRIEVAL_KS, *RETRIEVAL_RANKS]
    head = "".join(f"<th>{esc(c)}</th>" for c in ["direction", "queries", "candidates", *cols])
    rows = []
    for key, name in RETRIEVAL_DIRECTIONS:
        if not any(f"{key}_{c}" in retrieval for c in cols):
            continue
        queries, candidates = counts[key]
        tds = [f'<td class="label">{esc(name)}</td>', f"<td>{_count(queries)}</td>", f"<td>{_count(candidates)}</td>"]
        for c in cols:
            v = retrieval.get(f"{key}_{c}")
            tds.append("<td>–</td>" if not isinstance(v, (int, float)) else f"<td>{float(v):.1f}</td>")
        rows.append(f'<tr data-direction="{key}">' + "".join(tds) + "</tr>")
    known = {f"{k}_{c}" for k, _ in RETRIEVAL_DIRECTIONS for c in cols} | {"n_pairs", "n_captions", "subset"}
    other = sorted((k, v) for k, v in retrieval.items() if k not in known and isinstance(v, (int, float)))
    subset = retrieval.get("subset")
    note = (f"Retrieval on the {esc(subset)} pairs" if subset and subset != "total" else "Retrieval on all pairs")
    note += (" (CLIP4Clip multi-sentence protocol): text → pair ranks every pair for each reference caption, pair → text"
             " ranks every pair's caption group for each pair; ties count against the query. R@K in %, MedR and"
             " MeanR are ranks (1 = first).")
    if other:
        note += " Also: " + ", ".join(f"{esc(k)} = {float(v):.1f}" for k, v in other) + "."
    return (f'<table id="retrieval"><thead><tr>{head}</tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
            f'<p class="note">{note}</p>')


def _examples_section(samples: Sequence[Mapping[str, Any]], ids: Sequence[str], examples: Mapping[str, Any],
                      why: str, thumb: int) -> str:
    by_id = {str(s["id"]): s for s in samples}
    groups = sorted({example_group(by_id[i]) for i in ids})
    out = []
    thumbs_ok, first_error = bool(examples), why
    cards = []
    for i in ids:
        s = by_id[i]
        ex = examples.get(i)
        # without the dataset: the tokenized references the scorer kept
        refs = list(ex.references) if ex is not None else list((s.get("stats") or {}).get("refs") or [])
        imgs = ""
        if ex is not None and thumbs_ok:
            try:
                before = thumbnail_data_uri(ex.before, thumb, example_id=i)
                after = thumbnail_data_uri(ex.after, thumb, example_id=i)
                imgs = (f'<div class="pair"><figure><img src="{before}" alt="before"><figcaption>before</figcaption>'
                        f'</figure><figure><img src="{after}" alt="after"><figcaption>after</figcaption></figure></div>')
            except UserError as e:
                thumbs_ok, first_error = False, str(e)
        score = _score(s)
        tags = s.get("tags") or {}
        tag_text = " · ".join(f"{k}: {v}" for k, v in sorted(tags.items()))
        ref_html = "".join(f"<li>{esc(r)}</li>" for r in refs) or "<li class='muted'>(references not available)</li>"
        # the score badge is the card's last column, not part of the text: copying a caption never takes it along
        cards.append(
            f'<div class="ex" data-id="{esc(i)}" data-group="{esc(example_group(s))}" '
            f'data-score="{"" if score is None else f"{score * 100:.4f}"}">{imgs}<div class="txt">'
            f'<div class="head"><b>{esc(i)}</b> <span class="tag">{esc(tag_text or "untagged")}</span></div>'
            f'<div class="pred"><span class="what">prediction</span> '
            f'<span class="caption">{esc(s.get("prediction", ""))}</span></div>'
            f'<ul class="refs">{ref_html}</ul></div>'
            f'<div class="score" title="per-example {SCORE} x100"><span class="metric">{SCORE}</span>'
            f'<span class="value">{"–" if score is None else f"{score * 100:.1f}"}</span></div></div>')
    if not thumbs_ok or not examples:
        out.append(f'<p class="note" id="no-images">Thumbnails not shown: images not available ({esc(first_error)}). '
                   "Pass --data-root to point at the dataset.</p>")
    options = "".join(f'<option value="{esc(g)}">{esc(g)}</option>' for g in groups)
    out.append(f'<div class="controls">Change type <select id="filter"><option value="">all</option>{options}</select> '
               '<label>Order <select id="order"><option value="worst">worst first</option>'
               '<option value="best">best first</option></select></label> '
               f'<span class="muted" id="shown"></span></div>')
    out.append(f'<p class="note">{len(ids)} of {len(samples)} examples: the worst and best by per-example CIDEr-D '
               "in each change type. An example's CIDEr-D weighs its n-grams by document frequencies over the whole "
               "split, not over its subset.</p>")
    out.append('<div id="examples">' + "\n".join(cards) + "</div>")
    return "\n".join(out)


REPORT_CSS = """
.controls { margin: 8px 0; } .controls select { margin-right: 12px; }
#examples { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 10px; }
.ex { display: flex; gap: 10px; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.ex .pair { display: flex; gap: 4px; } .ex figure { margin: 0; text-align: center; }
.ex img { width: 96px; height: auto; image-rendering: auto; border: 1px solid var(--line); display: block; }
.ex figcaption { font-size: 11px; color: var(--muted); } .ex .txt { flex: 1; min-width: 0; }
.ex .score { flex: none; align-self: flex-start; display: flex; flex-direction: column; align-items: center;
  min-width: 64px; padding: 3px 6px; border-radius: 4px; background: #e8ecf4; user-select: none; }
.ex .score .metric { font-size: 10.5px; color: var(--muted); } .ex .score .value { font-weight: 600; font-size: 15px; }
.ex .pred { margin: 4px 0; } .ex .pred .what { color: var(--muted); font-size: 12.5px; user-select: none; }
ul.refs { margin: 2px 0 0 16px; padding: 0; font-size: 12.5px; color: var(--muted); }
pre { background: #f6f7f9; padding: 8px; overflow-x: auto; font-size: 12px; }
"""

FILTER_JS = """
(function () {
  var box = document.getElementById('examples'); if (!box) return;
  var filter = document.getElementById('filter'), order = document.getElementById('order');
  var shown = document.getElementById('shown');
  function update() {
    var cards = Array.prototype.slice.call(box.children), g = filter.value, dir = order.value === 'best' ? -1 : 1, n = 0;
    cards.sort(function (a, b) {
      var x = parseFloat(a.dataset.score), y = parseFloat(b.dataset.score);
      if (isNaN(x)) x = -1; if (isNaN(y)) y = -1;
      return (x - y) * dir || (a.dataset.id < b.dataset.id ? -1 : 1); });
    cards.forEach(function (c) { var on = !g || c.dataset.group === g; c.style.display = on ? '' : 'none';
      if (on) n++; box.appendChild(c); });
    shown.textContent = n + ' shown';
  }
  filter.addEventListener('change', update); order.addEventListener('change', update); update();
})();
"""
