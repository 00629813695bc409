"""Small things a new user meets in an afternoon with the CLI (issue 21, Low): Ctrl-C says that the same command
resumes, `list` through a pipe is one plain line per name, `doctor` shows what it checks, `compare` defaults to runs/,
leaderboard anchors work on GitHub."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from _cli import run_cli
from _fake_runs import clevr_like, predictions, write_run


def _pairs(folder: Path, n_test: int) -> None:
    Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / "a.png")
    Image.new("RGB", (8, 8), (10, 10, 200)).save(folder / "b.png")
    rows = [{"before": "a.png", "after": "b.png", "captions": ["the square turned blue"], "split": "train"}]
    rows += [{"before": "a.png", "after": "b.png", "captions": ["the square turned blue"], "split": "test"}] * n_test
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.java
def test_ctrl_c_says_the_same_command_resumes(tmp_path):
    _pairs(tmp_path, 40)
    args = [sys.executable, "-m", "idcbench", "run", "most-frequent", "--dataset", "pairs:pairs.jsonl", "--data-root",
            str(tmp_path), "--runs-dir", str(tmp_path / "runs"), "--batch-size", "1", "--metrics", "BLEU-4"]
    env = {**os.environ, "IDCBENCH_DEBUG_BATCH_DELAY": "0.2"}
    # SIGINT is Python's KeyboardInterrupt only when it is not ignored (a background shell job ignores it)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(tmp_path.glob("runs/*/*/*/predictions.jsonl")) or \
            len(next(tmp_path.glob("runs/*/*/*/predictions.jsonl")).read_text().splitlines()) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted (Ctrl-C); saved work is kept: rerun the same command to resume"
    done = len(next(tmp_path.glob("runs/*/*/*/predictions.jsonl")).read_text().splitlines())
    assert 2 <= done < 40
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(next(tmp_path.glob("runs/*/*/*/predictions.jsonl")).read_text().splitlines()) == 40


def test_ctrl_c_inside_a_command_is_one_line_and_exit_130(capsys, monkeypatch):
    import idcbench.doctor

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(idcbench.doctor, "java_check", interrupted)
    code, _, err = run_cli(capsys, "doctor")
    assert code == 130 and "rerun the same command to resume" in err and "Traceback" not in err


def test_doctor_says_what_it_is_checking(monkeypatch, capsys):
    import io

    from rich.console import Console

    import idcbench.commands.info as info

    terminal = io.StringIO()
    monkeypatch.setattr(info, "err_console", Console(file=terminal, force_terminal=True, width=100))
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0 and "BERTScore" in out
    shown = terminal.getvalue()
    for k, name in enumerate(["java", "torch", "pycocoevalcap jars", "SPICE", "BERTScore"]):
        assert f"checking \x1b[1m{name}\x1b[0m ({k + 1} of 5)" in shown


def test_list_through_a_pipe_is_one_plain_line_per_name(capsys):
    from idcbench.registry import MODELS

    code, out, _ = run_cli(capsys, "list", "models")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [e.name for e in MODELS.entries("*")]
    entry = MODELS.entries("clip4idc-tiny")[0]
    assert f"clip4idc-tiny  " in out and entry.description in out  # whole: grep finds name and description
    assert not any(c in out for c in "│┃━─")


def test_compare_without_arguments_reads_runs_like_the_leaderboard(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "compare")
    assert code == 2 and "./runs is not a folder" in err
    ex = clevr_like(10)
    write_run(tmp_path / "runs", "clevr-change", "weak", ex, predictions(ex, 0.3))
    code, out, err = run_cli(capsys, "compare", "--format", "json", "--resamples", "0")
    assert code == 0 and "runs: runs" in err
    assert [r["label"] for r in json.loads(out)[0]["rows"]] == ["weak"]
    code, _, err = run_cli(capsys, "compare", "runs", "--runs-dir", "runs")
    assert code == 2 and "not both" in err


def test_readme_links_reach_github_heading_anchors(tmp_path):
    from idcbench.tables import publish

    ex = clevr_like(10)
    write_run(tmp_path / "runs", "pairs:data/my_pairs.jsonl", "weak", ex, predictions(ex, 0.3))
    publish.build_leaderboard(tmp_path / "runs", tmp_path / "board", resamples=0)
    readme = (tmp_path / "board" / "README.md").read_text()
    # GitHub's anchor of '## pairs:data/my_pairs.jsonl (test)': lower case, punctuation but - and _ dropped
    assert "## pairs:data/my_pairs.jsonl (test)" in readme and "(#pairsdatamy_pairsjsonl-test)" in readme
    assert 'id="pairsdatamy_pairsjsonl-test"' in (tmp_path / "board" / "index.html").read_text()


def test_unknown_config_key_of_a_family_without_keys_says_so():
    from idcbench.factory import create_model
    from idcbench.errors import UserError

    with pytest.raises(UserError) as e:
        create_model("most-frequent", foo=1)
    assert str(e.value) == "most-frequent: unknown config key 'foo' (most-frequent takes no config keys)"


@pytest.mark.java
def test_eval_reads_csv_and_marks_a_partial_score_in_its_table(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    refs = {1: "the red cube moved", 2: "nothing has changed", 3: "a blue sphere appeared"}
    gt.write_text(json.dumps({"annotations": [{"image_id": i, "caption": c} for i, c in refs.items()]}))
    jsonl, table = tmp_path / "p.jsonl", tmp_path / "p.csv"
    preds = {1: "the red cube moved", 2: "nothing changed, really", 3: "a sphere appeared"}
    jsonl.write_text("".join(json.dumps({"id": i, "caption": c}) + "\n" for i, c in preds.items()))
    table.write_text("id,caption\n" + "".join(f'{i},"{c}"\n' for i, c in preds.items()))
    scores = []
    for path in (jsonl, table):
        code, out, err = run_cli(capsys, "eval", path, "--references", gt, "--metrics", "BLEU-4,CIDEr-D", "--json", "-")
        assert code == 0, err
        scores.append(json.loads(out)["subsets"])
    assert scores[0] == scores[1]
    (tmp_path / "p.txt").write_text("1 the red cube moved\n")
    code, _, err = run_cli(capsys, "eval", tmp_path / "p.txt", "--references", gt)
    assert code == 2 and "not a predictions file: expected a COCO results list" in err and ".csv" in err
    (tmp_path / "part.csv").write_text("id,caption\n1,the red cube moved\n")
    code, out, _ = run_cli(capsys, "eval", tmp_path / "part.csv", "--references", gt, "--metrics", "BLEU-4",
                           "--allow-partial")
    assert code == 0 and "partial, 1 of 3 ids scored" in out.splitlines()[0]  # in the table, not only on stderr


def test_scoring_bar_counts_belong_to_their_stage(monkeypatch):
    import io

    from rich.console import Console

    import idcbench.commands.run as run_command

    screen = io.StringIO()
    monkeypatch.setattr(run_command, "console", Console(file=screen, force_terminal=True, width=120))
    with run_command.RichReporter() as reporter:
        reporter.begin("caption", 60, 20)  # a resumed run: 20 of 60 already captioned
        reporter.advance("caption", 5)
        reporter.progress.refresh()
        reporter.begin("score", 1)
        reporter.update("score", 2, 2, "CIDEr-D")  # subsets of one metric, not the whole scoring
        reporter.progress.refresh()
        shown = screen.getvalue()
        assert "25/60" in shown
        assert set(re.findall(r"(\S+) 2/2", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown))) == {"CIDEr-D"}
        reporter.end("score")
        reporter.progress.refresh()
    assert "done" in screen.getvalue()
