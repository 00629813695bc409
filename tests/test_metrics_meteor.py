"""The METEOR process: EVAL aggregates equal `meteor.aggregate` (also with repeated segments), and a process killed
mid-evaluation ends in a clear error instead of a hang."""

from __future__ import annotations

import pytest

from idcbench.metrics.meteor import MeteorError, MeteorProcess, aggregate, parse_stats, summable

pytestmark = pytest.mark.java


@pytest.mark.timeout(300)
def test_eval_matches_python_aggregate_then_kill_gives_clear_error():
    hyps = ["the red cube moved", "", "a blue sphere", "there is no change", "a b c d e f"]
    refs = [["a red cube has moved"], ["x"], ["a blue sphere", "the sphere"], ["there is no change"], ["f e d c b a"]]
    with MeteorProcess() as m:
        lines = m.stats(hyps, refs)
        for sample in (lines, lines + lines[:2], [lines[3]] * 3, [lines[1]]):
            segments, agg = m.eval(sample)
            assert segments == [aggregate(parse_stats(s)) for s in sample]
            assert aggregate(sum(summable(parse_stats(s)) for s in sample)) == pytest.approx(agg, rel=1e-12, abs=1e-15)
            assert m.aggregates([sample]) == [agg]  # the summed-statistics EVAL: the same bits
        per_line, aggs = m.evaluate(lines + lines[:1], [[0, 1, 2], [3], [0, 5, 4]])
        assert per_line == m.eval(lines + lines[:1])[0]
        assert aggs == [m.eval(lines[:3])[1], m.eval([lines[3]])[1], m.eval([lines[0], lines[0], lines[4]])[1]]
        m.submit([f"the cube number {k} moved" for k in range(5000)], refs[:1] * 5000)
        m._read()  # the process is busy with the batch
        m.proc.kill()
        with pytest.raises(MeteorError, match="ended unexpectedly"):
            m.collect()
    assert m.proc.poll() is not None
