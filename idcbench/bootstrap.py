"""Bootstrap confidence intervals and paired bootstrap tests over evaluation examples.

The bootstrap knows nothing about captioning metrics. A *statistic* maps a batch of resamples to one value per
resample: it receives an index matrix ``idx`` of shape ``(B, n)`` (row b = the n example positions drawn with
replacement for resample b; a position may repeat and each occurrence counts as its own document) and returns an
array of shape ``(B,)``. Corpus metrics that are sums or means of per-example statistics vectorise over the whole
batch (`MeanStatistic`, `RatioStatistic`, or your own function of `counts(idx)`); anything else can be wrapped with
`per_resample`, which calls a plain corpus function once per resample.

Resampling is seeded and the same seed draws the same index matrix for every statistic and every model, which is
what makes the paired test paired.

>>> import numpy as np
>>> x = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
>>> ci = confidence_interval(MeanStatistic(x), len(x), resamples=200, seed=0)
>>> round(ci.value, 2), ci.low <= ci.value <= ci.high
(0.6, True)
>>> paired_test(MeanStatistic(x), MeanStatistic(x), len(x), resamples=200).p_value
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_LEVEL = 0.95


class Statistic(Protocol):
    """A corpus statistic evaluated on a batch of resamples: ``(B, n)`` int indices -> ``(B,)`` floats."""

    def __call__(self, idx: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval (same scale as the statistic)."""

    value: float
    low: float
    high: float
    level: float = DEFAULT_LEVEL
    resamples: int = DEFAULT_RESAMPLES


@dataclass(frozen=True)
class PairedResult:
    """Paired bootstrap comparison of A against B: observed difference A - B, its interval and a two-sided p-value."""

    delta: float
    low: float
    high: float
    p_value: float
    resamples: int


def resample_batches(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     batch: int = 100) -> Iterator[np.ndarray]:
    """Yield the index matrices of `resamples` bootstrap resamples of `n` examples, `batch` rows at a time.

    The draw depends only on (n, resamples, seed): batching does not change it.

    >>> a = np.concatenate(list(resample_batches(10, 7, seed=3, batch=2)))
    >>> b = np.concatenate(list(resample_batches(10, 7, seed=3, batch=100)))
    >>> a.shape, bool((a == b).all())
    ((7, 10), True)
    """
    if n <= 0:
        raise ValueError("cannot bootstrap an empty corpus")
    rng = np.random.Generator(np.random.PCG64(seed))
    done = 0
    while done < resamples:
        b = min(batch, resamples - done)
        # One row at a time keeps the stream independent of the batch size.
        yield np.stack([rng.integers(0, n, size=n) for _ in range(b)])
        done += b


def counts(idx: np.ndarray, n: int | None = None) -> np.ndarray:
    """How often each example occurs in each resample: ``(B, n)`` indices -> ``(B, n)`` int64 counts.

    Integer counts times integer per-example statistics give exact, machine-independent sums (no BLAS).

    >>> counts(np.array([[0, 0, 2], [1, 2, 2]]))
    array([[2, 0, 1],
           [0, 1, 2]])
    """
    idx = np.asarray(idx)
    n = idx.shape[1] if n is None else n
    flat = (idx + (np.arange(idx.shape[0]) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=idx.shape[0] * n).reshape(idx.shape[0], n).astype(np.int64)


class MeanStatistic:
    """Mean of a per-example value (ROUGE-L, SPICE, BERTScore and any metric whose corpus score is a mean)."""

    def __init__(self, values: Sequence[float] | np.ndarray):
        self.values = np.asarray(values, dtype=np.float64)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        return self.values[idx].mean(axis=1)


class RatioStatistic:
    """Ratio of two per-example sums, e.g. micro-averaged accuracy: sum(num[idx]) / sum(den[idx])."""

    def __init__(self, num: Sequence[float], den: Sequence[float]):
        self.num = np.asarray(num, dtype=np.float64)
        self.den = np.asarray(den, dtype=np.float64)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        den = self.den[idx].sum(axis=1)
        return np.divide(self.num[idx].sum(axis=1), den, out=np.zeros_like(den), where=den != 0)


class MeanOf:
    """Average of several statistics on the same resample (e.g. one model's runs over several seeds)."""

    def __init__(self, statistics: Sequence[Statistic]):
        if not statistics:
            raise ValueError("MeanOf needs at least one statistic")
        self.statistics = list(statistics)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        return np.mean([s(idx) for s in self.statistics], axis=0)


def per_resample(corpus_fn: Callable[[np.ndarray], float]) -> Statistic:
    """Wrap a plain corpus function of one index vector (length n) into a batch `Statistic`.

    Slow but general: use it for metrics that cannot be vectorised.

    >>> s = per_resample(lambda ix: float(np.max(ix)))
    >>> s(np.array([[0, 1], [1, 1]]))
    array([1., 1.])
    """

    def statistic(idx: np.ndarray) -> np.ndarray:
        return np.array([float(corpus_fn(row)) for row in idx], dtype=np.float64)

    return statistic


def _identity(n: int) -> np.ndarray:
    return np.arange(n)[None, :]


def distribution(statistic: Statistic, n: int, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                 batch: int = 100) -> np.ndarray:
    """The statistic on each of `resamples` seeded resamples: shape ``(resamples,)``."""
    return np.concatenate([np.asarray(statistic(idx), dtype=np.float64)
                           for idx in resample_batches(n, resamples, seed, batch)])


def percentile_interval(values: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Percentile interval of a bootstrap distribution (linear interpolation, like numpy's default)."""
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def confidence_interval(statistic: Statistic, n: int, *, resamples: int = DEFAULT_RESAMPLES,
                        seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL, point: float | None = None,
                        batch: int = 100) -> Interval:
    """Percentile bootstrap interval of a corpus statistic over `n` examples.

    `point` is the reported value (e.g. the exact score from metrics.json); by default the statistic on the
    original corpus.
    """
    value = float(statistic(_identity(n))[0]) if point is None else float(point)
    if resamples <= 0:
        return Interval(value, value, value, level, 0)
    low, high = percentile_interval(distribution(statistic, n, resamples=resamples, seed=seed, batch=batch), level)
    return Interval(value, low, high, level, resamples)


def paired_test(a: Statistic, b: Statistic, n: int, *, resamples: int = DEFAULT_RESAMPLES,
                seed: int = DEFAULT_SEED, level: float = DEFAULT_LEVEL, batch: int = 100) -> PairedResult:
    """Paired bootstrap test of A against B on the same `n` examples (same resampled indices for both).

    Two-sided p-value: twice the smaller tail of the resampled differences around zero, with the +1 correction
    that keeps it above zero: ``min(1, 2 * min(1 + #{d <= 0}, 1 + #{d >= 0}) / (1 + R))``. Identical systems
    give p = 1; a system better on every resample gives p = 2 / (1 + R).
    """
    delta = float(a(_identity(n))[0] - b(_identity(n))[0])
    diffs = np.concatenate([np.asarray(a(idx), dtype=np.float64) - np.asarray(b(idx), dtype=np.float64)
                            for idx in resample_batches(n, resamples, seed, batch)])
    low, high = percentile_interval(diffs, level)
    # Differences below float noise count as ties (a statistic recomputed in two orders may differ by 1 ulp).
    tol = 1e-12 * max(1.0, float(np.max(np.abs(diffs))) if diffs.size else 1.0)
    le = int(np.sum(diffs <= tol))
    ge = int(np.sum(diffs >= -tol))
    p = min(1.0, 2 * min(1 + le, 1 + ge) / (1 + len(diffs)))
    return PairedResult(delta, low, high, p, len(diffs))
