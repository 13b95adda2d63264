"""The statistical tests and intervals, as pure functions of score arrays (percent).

Each answers one question, named in its docstring. They return NaN where the data cannot answer
(too few runs, no variation); the tables beside them say why in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import brentq
from statsmodels.stats.multitest import multipletests


def _sd_rows(x: np.ndarray) -> tuple[int, np.ndarray]:
    """n and the sample std of each row (the last axis); NaN where n < 2 or there is no variation,
    since no interval can then be drawn from normal theory."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    if n < 2:
        return n, np.full(x.shape[:-1], np.nan)
    s = np.std(x, axis=-1, ddof=1)
    return n, np.where(s > 0, s, np.nan)


def mean_interval(x: np.ndarray, confidence: float = 0.95) -> tuple:
    """Student's t interval for the mean of each row: it covers at its level for normal data from
    n = 2 on (a percentile bootstrap covered 75% at n = 3 in the review's simulation)."""
    n, s = _sd_rows(x)
    if n < 2:
        return np.nan, np.nan
    centre = np.mean(x, axis=-1)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * s / np.sqrt(n)
    return _scalar(centre - half), _scalar(centre + half)


def sd_interval(x: np.ndarray, confidence: float = 0.95) -> tuple:
    """Chi-square interval for the standard deviation of each row, for normal data."""
    n, s = _sd_rows(x)
    if n < 2:
        return np.nan, np.nan
    df, tail = n - 1, (1 - confidence) / 2
    return _scalar(s * np.sqrt(df / stats.chi2.ppf(1 - tail, df))), _scalar(s * np.sqrt(df / stats.chi2.ppf(tail, df)))


def _scalar(value: np.ndarray):
    """A plain float for one row, the array for many."""
    return float(value) if np.ndim(value) == 0 else value


def prediction_test(det: float, x: np.ndarray) -> tuple[float, float]:
    """Is `det` an ordinary draw from the distribution `x` was drawn from? t = (det - mean) /
    (s sqrt(1 + 1/n)), n - 1 df, two-sided. Unlike the one-sample t-test, its false-alarm rate
    stays at alpha however many repeats are run."""
    n = len(x)
    s = float(np.std(x, ddof=1)) if n > 1 else np.nan
    if n < 2 or not s > 0 or np.isnan(det):
        return np.nan, np.nan
    t = (det - float(np.mean(x))) / (s * np.sqrt(1 + 1 / n))
    return float(t), float(2 * stats.t.sf(abs(t), n - 1))


@dataclass(frozen=True)
class Rank:
    below: int  # runs strictly below det
    ties: int  # runs equal to det
    above: int  # runs strictly above det
    p: float  # two-sided, ties counted against rejecting: exact under exchangeability
    p_min: float  # the smallest p this many runs can give: 2 / (n + 1)


def rank_test(det: float, x: np.ndarray) -> Rank:
    """Where det falls among the runs, with an exact two-sided p-value that assumes nothing about
    the distribution: if det were one more draw, each of the n + 1 ranks would be equally likely."""
    n = len(x)
    if n == 0 or np.isnan(det):
        return Rank(0, 0, 0, np.nan, np.nan)
    below, above = int((x < det).sum()), int((x > det).sum())
    ties = n - below - above
    p = min(1.0, 2 * (min(below, above) + ties + 1) / (n + 1))
    return Rank(below, ties, above, p, min(1.0, 2 / (n + 1)))


def one_sample_t(det: float, x: np.ndarray) -> tuple[float, float]:
    """The reference study's Table V test: does the mean of the runs equal det exactly? With many
    runs it rejects even when det is an ordinary draw (the review measured 38% at n = 6)."""
    if len(x) < 2 or not np.std(x) > 0 or np.isnan(det):
        return np.nan, np.nan
    res = stats.ttest_1samp(x, popmean=det)
    return float(res.statistic), float(res.pvalue)


def sign_test(det: float, x: np.ndarray) -> float:
    """Exact two-sided sign test of the runs' median against det (ties with det dropped)."""
    above, below = int((x > det).sum()), int((x < det).sum())
    if above + below == 0 or np.isnan(det):
        return np.nan
    return float(stats.binomtest(above, above + below).pvalue)


def holm(pvalues: pd.Series) -> pd.Series:
    """Holm-adjusted p-values over the non-NaN entries (NaN stays NaN and is not counted in m)."""
    valid = pvalues.dropna()
    if valid.empty:
        return pvalues.astype(float)
    adjusted = multipletests(valid.to_numpy(dtype=float), method="holm")[1]
    return pd.Series(adjusted, index=valid.index).reindex(pvalues.index)


@dataclass(frozen=True)
class Shift:
    seeds: int
    mean: float  # mean over seeds of (det - noisy mean), points
    lo: float
    hi: float  # t interval of that mean
    t: float
    p: float  # paired t-test, seeds - 1 df
    p_exact: float  # sign-flip permutation over seeds: exact, no normality
    p_min: float  # smallest p the sign-flip test can give with this many seeds


def seed_shift(diffs: np.ndarray, confidence: float = 0.95) -> Shift:
    """Does the mode move the score? Each seed contributes one difference det - mean(noisy), so
    the seed is the unit of replication and the repeats only sharpen each seed's mean."""
    k = len(diffs)
    if k < 2:
        return Shift(k, float(diffs.mean()) if k else np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan)
    lo, hi = mean_interval(diffs, confidence)
    if np.std(diffs) > 0:
        res = stats.ttest_1samp(diffs, 0.0)
        t, p = float(res.statistic), float(res.pvalue)
    else:
        t = p = np.nan
    signs = np.array(list(product((1.0, -1.0), repeat=k))) if k <= 16 else None
    if signs is not None:
        observed = abs(diffs.sum())
        p_exact = float((np.abs(signs @ diffs) >= observed - 1e-12).mean())
        p_min = 2 / 2**k
    else:
        p_exact = p_min = np.nan
    return Shift(k, float(diffs.mean()), lo, hi, t, p, p_exact, p_min)


@dataclass(frozen=True)
class Components:
    seeds: int
    runs: int
    ms_between: float
    ms_within: float
    var_seed: float  # truncated at 0
    var_seed_raw: float  # the ANOVA estimate before truncation (negative: seeds vary less than chance)
    var_cuda: float
    var_cuda_lo: float
    var_cuda_hi: float
    share_cuda: float  # var_cuda / (var_seed + var_cuda)
    share_cuda_lo: float
    share_cuda_hi: float


def random_effects(groups: list[np.ndarray], confidence: float = 0.95) -> Components:
    """How much of the runs' variance is CUDA noise (within a seed) and how much the seed adds.

    One-way random-effects ANOVA (Searle's unbalanced n0); the interval for the CUDA share is
    Searle's F-based interval for the intraclass correlation, the one for var_cuda chi-square.
    With one seed only the within-seed variance can be estimated.
    """
    groups = [g for g in groups if len(g)]
    k, n = len(groups), sum(len(g) for g in groups)
    nan = np.nan
    if n - k < 1:
        return Components(k, n, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    ms_within = sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / (n - k)
    tail = (1 - confidence) / 2
    df_w = n - k
    cuda_lo = df_w * ms_within / stats.chi2.ppf(1 - tail, df_w)
    cuda_hi = df_w * ms_within / stats.chi2.ppf(tail, df_w)
    if k < 2:
        return Components(k, n, nan, ms_within, nan, nan, ms_within, cuda_lo, cuda_hi, nan, nan, nan)
    grand = np.concatenate(groups).mean()
    ms_between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (k - 1)
    n0 = (n - sum(len(g) ** 2 for g in groups) / n) / (k - 1)
    raw = (ms_between - ms_within) / n0
    var_seed = max(raw, 0.0)
    share = ms_within / (var_seed + ms_within) if var_seed + ms_within > 0 else nan
    lo = hi = nan
    if ms_within > 0:
        f = ms_between / ms_within
        f_lo, f_hi = f / stats.f.ppf(1 - tail, k - 1, df_w), f / stats.f.ppf(tail, k - 1, df_w)
        icc_lo = float(np.clip((f_lo - 1) / (f_lo + n0 - 1), 0, 1))
        icc_hi = float(np.clip((f_hi - 1) / (f_hi + n0 - 1), 0, 1))
        lo, hi = 1 - icc_hi, 1 - icc_lo
    return Components(k, n, ms_between, ms_within, var_seed, raw, ms_within, cuda_lo, cuda_hi, share, lo, hi)


def power(n: int, effect: float, alpha: float = 0.05) -> float:
    """Power of a two-sided one-sample t-test with n runs against a standardized shift `effect`.
    Both tails from nct.sf: scipy's nct.cdf returns NaN far out in the lower tail."""
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) * np.sqrt(n)
    achieved = float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))
    if not np.isfinite(achieved):
        raise ArithmeticError(f"power is not finite at n={n}, effect={effect}")
    return achieved


def repeats_needed(
    delta: float, sd: float, alpha: float = 0.05, target: float = 0.8, max_n: int = 100_000
) -> int | None:
    """Fewest runs (>= 2, the least a t-test needs) for the one-sample t-test to detect a true shift
    of `delta` with probability `target`; None where sd is not positive or no n up to max_n does."""
    if not sd > 0 or not np.isfinite(sd):
        return None
    effect = abs(delta) / sd
    lo, hi = 2, 2
    while power(hi, effect, alpha) < target:  # why: power rises with n; double, then bisect
        lo, hi = hi, hi * 2
        if hi > max_n:
            return None
    if power(lo, effect, alpha) >= target:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(mid, effect, alpha) >= target else (mid, hi)
    return hi


def detectable_shift(n: int, sd: float, alpha: float = 0.05, target: float = 0.8, prediction: bool = True) -> float:
    """The smallest shift (same unit as sd) a t-test on n runs detects with probability `target`;
    for the prediction test the noise of the single new draw counts too (sd sqrt(1 + 1/n))."""
    if n < 2 or not sd > 0:
        return np.nan
    scale = sd * np.sqrt(1 + 1 / n) if prediction else sd / np.sqrt(n)
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def achieved(shift: float) -> float:
        nc = shift / scale
        return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc)) - target

    hi = scale
    while achieved(hi) < 0:
        hi *= 2
    return float(brentq(achieved, 0.0, hi, xtol=1e-9 * scale))
