"""METEOR 1.5 through pycocoevalcap's jar, in one long-lived process, without pycocoevalcap's traps.

`MeteorProcess` starts ``java -jar meteor-1.5.jar - - -stdio -l en -norm`` (with locale flags, so that Java parses
and prints decimal points, and ``-XX:+UseParallelGC``, which loads the paraphrase table faster). Its input is
written by a thread, so the caller computes other metrics while the JVM works; stdout and stderr are drained by
threads; every read has a timeout; a process that dies gives a clear `MeteorError` with the tail of its stderr,
never a hang; `close()` is safe on every path.

Work is cut without changing a bit: (hypothesis, reference) pairs that occur in several images (templated
captions) are aligned once and the jar's per-image choice of reference is replayed on the jar's own scores; the
aggregate of each subset is the jar's EVAL of that subset's summed statistics (what EVAL computes from the lines).

`aggregate(totals)` is that aggregate in Python (MeteorScorer.computeMetrics of meteor-1.5 with the `en -norm`
defaults, read from the jar's bytecode), for resampling without Java.

>>> aggregate(parse_stats("4.0 5.0 1.0 2.0 2.0 2.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 1.0 1.0 1.0 1.0 2.0 4.0 4.0"))
0.3698087705979295
"""

from __future__ import annotations

import atexit
import collections
import queue
import subprocess
import threading
from typing import Callable, Sequence

import numpy as np

from idcbench.errors import UserError
from idcbench.metrics._java import LOCALE_FLAGS, SCORER_JAVA, java_executable, meteor_jar, require_jar
from idcbench.metrics.base import Corpus, Metric, Scores, register, row_stats

STATS_LENGTH = 23
# meteor-1.5 `-l en -norm` defaults (its header: "Weights: 1.0 0.6 0.8 0.6", "Parameters: 0.85 0.2 0.6 0.75").
ALPHA, BETA, GAMMA, DELTA = 0.85, 0.2, 0.6, 0.75
WEIGHTS = (1.0, 0.6, 0.8, 0.6)


class MeteorError(UserError):
    """The METEOR process failed, died or timed out."""


def score_line(hyp: str, refs: Sequence[str]) -> str:
    """pycocoevalcap's SCORE line: the hypothesis loses ``|||`` and double spaces; references are sent as they are."""
    hyp = hyp.replace("|||", "").replace("  ", " ")
    return " ||| ".join(("SCORE", " ||| ".join(refs), hyp))


_JAVA_SPACE = "".join(chr(c) for c in range(33))


def segment(hyp: str, refs: Sequence[str]) -> tuple[str, list[str]]:
    """(hypothesis, references) as the jar sees pycocoevalcap's SCORE line: split at ``|||`` (a reference that
    contains ``|||`` becomes two) and trimmed with Java's ``String.trim``."""
    parts = score_line(hyp, refs).split("|||")
    while parts and parts[-1] == "":  # Java's String.split drops trailing empty strings
        parts.pop()
    return parts[-1].strip(_JAVA_SPACE), [p.strip(_JAVA_SPACE) for p in parts[1:-1]]


class MeteorProcess:
    """One METEOR JVM. Use as a context manager, or call `close()`; both are safe on every error path."""

    def __init__(self, *, startup_timeout: float = 600.0, line_timeout: float = 120.0):
        java = java_executable()
        jar = require_jar(meteor_jar())
        self.cmd = [java, "-Xmx2G", "-XX:+UseParallelGC", *LOCALE_FLAGS, "-jar", str(jar),
                    "-", "-", "-stdio", "-l", "en", "-norm"]
        self.startup_timeout = startup_timeout
        self.line_timeout = line_timeout
        self._answered = False
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._write_error: BaseException | None = None
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=str(jar.parent), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise MeteorError(f"cannot start METEOR ({self.cmd[0]}): {e}") from None
        self._threads = [
            threading.Thread(target=self._drain_stdout, daemon=True, name="meteor-stdout"),
            threading.Thread(target=self._drain_stderr, daemon=True, name="meteor-stderr"),
        ]
        for t in self._threads:
            t.start()

    # -- plumbing -------------------------------------------------------------------------------------------
    def _drain_stdout(self) -> None:
        try:
            for raw in self.proc.stdout:
                self._lines.put(raw.decode("utf-8", "replace").strip())
        except (OSError, ValueError):
            pass
        finally:
            self._lines.put(None)

    def _drain_stderr(self) -> None:
        try:
            for raw in self.proc.stderr:
                self._stderr.append(raw.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass

    def _write(self, lines: list[str]) -> None:
        try:
            data = "".join(line + "\n" for line in lines).encode("utf-8")
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (OSError, ValueError) as e:
            self._write_error = e

    def _send(self, lines: list[str]) -> None:
        if self._writer is not None:
            self._writer.join()
        for line in lines:
            if "\n" in line or "\r" in line:
                raise ValueError("a METEOR line may not contain a line break")
        self._writer = threading.Thread(target=self._write, args=(lines,), daemon=True, name="meteor-stdin")
        self._writer.start()

    def _fail(self, what: str) -> MeteorError:
        code = self.proc.poll()
        tail = " | ".join(list(self._stderr)[-3:])
        state = f"exit code {code}" if code is not None else "still running"
        self.close()
        return MeteorError(f"METEOR (Java) {what} ({state}){': ' + tail if tail else ''}")

    def _read(self) -> str:
        timeout = self.line_timeout if self._answered else self.startup_timeout
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise self._fail(f"gave no answer within {timeout:.0f} s") from None
        if line is None:
            self._lines.put(None)
            raise self._fail("ended unexpectedly")
        self._answered = True
        return line

    # -- protocol -------------------------------------------------------------------------------------------
    def submit(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        """Send the work for all images without waiting; `collect()` returns their statistics lines.

        The jar scores a hypothesis against each reference separately and keeps the statistics of the first
        reference with the highest score (MeteorScorer.getMeteorStats). An image whose (hypothesis, reference)
        pairs all occur nowhere else is sent as pycocoevalcap's SCORE line. For the others (templated captions)
        each distinct pair is aligned once, and the choice is made here on the jar's own segment scores (one
        EVAL): the same statistics lines, with much less work.
        """
        with self._lock:
            segs = [segment(h, rs) for h, rs in zip(hyps, refs)]
            freq = collections.Counter(pair for hyp, rs in segs for pair in {(hyp, r) for r in rs})
            lines: list[str] = []
            pairs: dict[tuple[str, str], int] = {}
            self._images = []  # per image: ("line", k) or ("pairs", [pair ids])
            for (h, rs), (hyp, eff) in zip(zip(hyps, refs), segs):
                if all(freq[(hyp, r)] == 1 for r in eff):
                    self._images.append(("line", len(lines)))
                    lines.append(score_line(h, rs))
                else:
                    self._images.append(("pairs", [pairs.setdefault((hyp, r), len(pairs)) for r in eff]))
            self._n_lines = len(lines)
            self._pairs = len(pairs)
            self._send(lines + [f"SCORE ||| {r} ||| {h}" for h, r in pairs])

    def collect(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """The statistics lines of the images of the last `submit()`, in order."""
        with self._lock:
            answers = []
            n = self._n_lines + self._pairs
            for i in range(n):
                line = self._read()
                if not _is_stats(line):
                    raise self._fail(f"answered {line[:80]!r} instead of statistics")
                answers.append(line)
                if progress is not None and (i % 256 == 255 or i == n - 1):
                    progress(i + 1, n)
        pair_lines = answers[self._n_lines:]
        scores = self.eval(pair_lines)[0] if pair_lines else []
        out = []
        for mode, ref in self._images:
            if mode == "line":
                out.append(answers[ref])
                continue
            best, best_score = ref[0], -1.0
            for p in ref:
                if scores[p] > best_score:
                    best, best_score = p, scores[p]
            out.append(pair_lines[best])
        return out

    def stats(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> list[str]:
        self.submit(hyps, refs)
        return self.collect()

    def eval(self, stats_lines: Sequence[str]) -> tuple[list[float], float]:
        """(segment scores, aggregate METEOR) of a corpus given its statistics lines."""
        if not stats_lines:
            raise ValueError("METEOR EVAL of an empty corpus")
        with self._lock:
            self._send(["EVAL ||| " + " ||| ".join(stats_lines)])
            try:
                values = [float(self._read()) for _ in range(len(stats_lines) + 1)]
            except ValueError:
                raise self._fail("answered EVAL with something that is not a number") from None
            return values[:-1], values[-1]

    def evaluate(self, lines: Sequence[str], corpora: Sequence[Sequence[int]]) -> tuple[list[float], list[float]]:
        """(segment score of each line, EVAL aggregate of each corpus given as line indices), in one EVAL.

        A segment score depends only on its line, so each distinct line is sent once; each corpus is sent as its
        summed statistics (see `aggregates`)."""
        distinct = list(dict.fromkeys(lines))
        summed = [_summed_line([lines[j] for j in corpus]) for corpus in corpora]
        scores = self.eval(distinct + summed)[0] if distinct or summed else []
        by_line = dict(zip(distinct, scores))
        return [by_line[line] for line in lines], scores[len(distinct):]

    def aggregates(self, corpora: Sequence[Sequence[str]]) -> list[float]:
        """The EVAL aggregate of each corpus (a list of statistics lines), in one EVAL.

        The jar's aggregate is computeMetrics on the statistics added up by MeteorStats.addStats. Each corpus is
        sent as that sum (exact: the statistics are integers; `summable` applies addStats' one rule), so the
        score the jar prints for it is, bit for bit, the aggregate it would print for the corpus's lines.
        """
        summed = [_summed_line(lines) for lines in corpora]
        return self.eval(summed)[0] if summed else []

    def close(self) -> None:
        """Stop the JVM (stdin closed, then killed if it lingers); idempotent."""
        proc = getattr(self, "proc", None)
        if proc is None:
            return
        writer = self._writer
        if writer is not None and writer.is_alive():
            # A writer blocked on a full pipe holds the stdin buffer's lock: closing stdin first would wait for it.
            proc.kill()
            writer.join(timeout=30)
        try:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass

    def __enter__(self) -> "MeteorProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _summed_line(lines: Sequence[str]) -> str:
    if not lines:
        raise ValueError("METEOR aggregate of an empty corpus")
    total = summable_table(lines).sum(axis=0)
    return " ".join(f"{x:.1f}" for x in total)


def _is_stats(line: str) -> bool:
    parts = line.split()
    if len(parts) != STATS_LENGTH:
        return False
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True


def parse_stats(line: str | Sequence[float]) -> np.ndarray:
    """A statistics line (or its 23 numbers) as 23 floats."""
    values = np.array([float(x) for x in (line.split() if isinstance(line, str) else line)], dtype=np.float64)
    if values.shape != (STATS_LENGTH,):
        raise ValueError(f"not a METEOR statistics line: {str(line)[:80]!r}")
    return values


def summable(stats: np.ndarray) -> np.ndarray:
    """The row(s) that MeteorStats.addStats adds for segments (``(23,)`` or ``(n, 23)``): a perfect match (all
    words matched in one chunk) contributes no chunk. Sums of such rows (in any order: they are integers) feed
    `aggregate`."""
    row = np.array(stats, dtype=np.float64)
    r = row.T
    test_total = r[4] + r[6] + r[8] + r[10] + r[12] + r[14] + r[16] + r[18]
    ref_total = r[5] + r[7] + r[9] + r[11] + r[13] + r[15] + r[17] + r[19]
    r[20] = np.where((test_total == r[0]) & (ref_total == r[1]) & (r[20] == 1), 0.0, r[20])
    return row


def summable_table(lines: Sequence[str | Sequence[float]]) -> np.ndarray:
    """``(n, 23)`` summable rows of per-segment statistics lines: ``counts @ table`` is a resample's total."""
    table = summable(np.array([parse_stats(x) for x in lines], dtype=np.float64).reshape(-1, STATS_LENGTH))
    if not np.array_equal(table, np.round(table)):
        raise ValueError("METEOR statistics must be word counts (integers)")
    return table


def aggregate(totals: Sequence[float] | np.ndarray) -> float | np.ndarray:
    """METEOR of summed `summable` rows (or of one segment's statistics): meteor-1.5's
    MeteorScorer.computeMetrics, operation by operation (IEEE semantics: x/0 gives inf or NaN as in Java, and a
    NaN score is 0). Equal to the jar's EVAL aggregate up to the last bit of ``Math.pow``. ``(23,)`` gives a
    float, ``(B, 23)`` (a batch of resamples) an array."""
    arr = np.asarray(totals, dtype=np.float64)
    t = arr.T
    tl, rl, tfw, rfw = t[0], t[1], t[2], t[3]
    chunks, twm, rwm = t[20], t[21], t[22]
    d = np.float64(DELTA)
    one = np.float64(1.0)
    with np.errstate(all="ignore"):
        test_total = ref_total = np.float64(0.0)
        for i in range(4):
            test_total = test_total + t[4 + 4 * i]
            ref_total = ref_total + t[5 + 4 * i]
            test_total = test_total + t[6 + 4 * i]
            ref_total = ref_total + t[7 + 4 * i]
        test_wlen = d * (tl - tfw) + (one - d) * tfw
        ref_wlen = d * (rl - rfw) + (one - d) * rfw
        test_wm = ref_wm = np.float64(0.0)
        for i, w in enumerate(WEIGHTS):
            test_wm = test_wm + t[4 + 4 * i] * w * d
        for i, w in enumerate(WEIGHTS):
            ref_wm = ref_wm + t[5 + 4 * i] * w * d
        for i, w in enumerate(WEIGHTS):
            test_wm = test_wm + t[6 + 4 * i] * w * (one - d)
        for i, w in enumerate(WEIGHTS):
            ref_wm = ref_wm + t[7 + 4 * i] * w * (one - d)
        precision = test_wm / test_wlen
        recall = ref_wm / ref_wlen
        fmean = one / ((one - ALPHA) / precision + ALPHA / recall)
        exact = (test_total == tl) & (ref_total == rl) & (chunks == 1)
        frag = np.where(exact, np.float64(0.0), chunks / ((twm + rwm) / 2.0))
        penalty = GAMMA * np.power(frag, np.float64(BETA))
        score = fmean * (one - penalty)
    score = np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))
    return float(score) if arr.ndim == 1 else score


class _Shared:
    """The METEOR JVM of this Python process: started on first use and kept for the next evaluations (its start and
    the paraphrase table take 7-10 s: a command that scores several runs, such as the demo, pays them once). An
    evaluation that did not finish (an error, an interrupt) leaves it unclean: the next one starts a new JVM."""

    process: MeteorProcess | None = None
    clean = True

    @classmethod
    def begin(cls) -> MeteorProcess:
        """The process for a new evaluation (a new one if there is none, the last was left unclean, or it died)."""
        p = cls.process
        if p is None or not cls.clean or p.proc.poll() is not None:
            if p is not None:
                p.close()
            cls.process = MeteorProcess()
            atexit.register(cls.process.close)
        cls.clean = False
        return cls.process

    @classmethod
    def current(cls) -> MeteorProcess:
        if cls.process is None or cls.clean:
            raise RuntimeError("METEOR's score() without its start()")
        return cls.process


class Meteor(Metric):
    """METEOR 1.5: the jar's aggregate of each subset's summed statistics; per-sample segment scores; the
    statistics lines kept per sample (``stats.meteor``) rescore any resample without Java."""

    name, order, default, column = "METEOR", 5.0, True, True
    description = f"METEOR 1.5 aggregate from summed statistics (pycocoevalcap's jar, one process; {SCORER_JAVA.text})"
    version = "meteor-1.5 (pycocoevalcap 1.2), -l en -norm"
    collect_last = True
    keeps = ("meteor",)

    def start(self, corpus: Corpus) -> None:
        _Shared.begin().submit(*corpus.tokens)  # its work goes on while the other metrics are computed

    def score(self, corpus: Corpus, done=None) -> Scores:
        process = _Shared.current()
        lines = process.collect(lambda d, t: corpus.progress(self.name, d, t))
        scored = [s for s, members in corpus.subsets.items() if members]
        seg_scores, aggs = process.evaluate(lines, [corpus.subsets[s] for s in scored])
        _Shared.clean = True
        return Scores(dict(zip(scored, aggs)), seg_scores, {"meteor": lines},
                      {"implementation": "meteor-1.5.jar from pycocoevalcap 1.2, -l en -norm, one process",
                       "aggregate": "the jar's EVAL aggregate of each subset's statistics lines",
                       "tokenizer": "PTB (stanford-corenlp-3.4.1)"})

    def statistic(self, rows):
        lines = row_stats(rows, "meteor")
        if lines is None or not all(isinstance(x, (str, list, tuple)) for x in lines):
            return None
        try:
            return MeteorStatistic(lines)
        except ValueError:
            return None


class MeteorStatistic:
    """METEOR 1.5's corpus score of a batch of resamples from per-example sufficient statistics (what the jar's
    ``EVAL`` prints last): `aggregate` of the resample's summed `summable` rows."""

    def __init__(self, stats: Sequence[str | Sequence[float]]):
        self.table = summable_table(stats).astype(np.int64)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        from idcbench.bootstrap import counts

        totals = (counts(idx, len(self.table)) @ self.table).astype(np.float64)  # (B, 23), exact integer sums
        return aggregate(totals)


register(Meteor())
