"""The statistical tests and intervals, as pure functions of score arrays (percent).

The model of the noise they assume (DESIGN.md, "Statistics"): each fresh non-deterministic process
draws one of a few kernel configurations, so runs land on a few outcomes, and copies of an outcome
are independent draws whose frequencies are information. Scores are lumpy, not normal. So:
- zero is zero: runs whose scores are all equal have no spread, exactly (`sd`), never round-off;
- tests are permutation tests, exact given the observed values, ties as mid-ranks;
- intervals for spreads and their shares are grouped-jackknife intervals on a scale where they are
  near normal, with as many degrees of freedom as there are distinct outcomes beyond one per
  configuration. bench/noise_model.py checks their coverage, and the tests' false alarms, by
  resampling the real studies' own outcome distributions (bench/RESULTS.md).
Normal-theory numbers kept for comparison with the reference study say so in their names.
They return NaN where the data cannot answer; the tables beside them say why in words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import brentq
from statsmodels.stats.multitest import multipletests

# Scores are stored as fractions and read in percent rounded at 10 decimals (cells.finished), so
# two scores closer than this are one value written twice: no spread, however the mean rounds.
RESOLUTION_PTS = 1e-9
MONTE_CARLO = 100_000  # random draws of a pooled permutation test, where enumeration is too large
SEED = 20261203  # the Monte Carlo tests' generator: a report is the same every time it is made


def varies(x: np.ndarray) -> bool:
    """Whether the scores differ by more than their stored resolution."""
    return len(x) > 1 and float(np.ptp(x)) > RESOLUTION_PTS


def sd(x: np.ndarray) -> float:
    """Sample standard deviation; exactly 0 where no score differs (the mean of twenty copies of
    90.35 is not 90.35 in floating point, and its deviations are not 0); NaN for fewer than 2."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return np.nan
    if not varies(x):
        return 0.0
    return float(np.std(x - x[0], ddof=1))  # why: centring on a score first keeps round-off out


def none_differ_bound(runs: int, alpha: float = 0.05) -> float:
    """When none of `runs` differed, the largest chance of a run differing that the data do not
    exclude at level alpha (one-sided, exact binomial; about 3/runs at 0.05)."""
    return float(1 - alpha ** (1 / runs)) if runs > 0 else np.nan


# --- is the deterministic run one of the noisy outcomes? -------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where det falls among a configuration's runs, and the exact permutation p-value of that."""

    below: int  # runs strictly below det
    ties: int  # runs equal to det
    above: int  # runs strictly above det
    p: float  # two-sided, mid-ranks for ties: exact given the n + 1 values, if det were one more draw
    p_min: float  # the smallest p these n + 1 values could give
    p_outside: float  # the chance, under the same null, that det lies strictly outside every run
    u: np.ndarray  # each of the n + 1 values' centred mid-rank / (n + 1): the null's support, det's last


def position(det: float, x: np.ndarray) -> Position:
    """If det were one more draw of the runs' distribution, det would be any of the n + 1 values with
    equal chance; its mid-rank's distance from the centre is the statistic. Exact for any distribution,
    ties included (conditional on the values observed); it cannot go below p_min, 2 / (n + 1) at best."""
    n = len(x)
    if n == 0 or np.isnan(det):
        return Position(0, 0, 0, np.nan, np.nan, np.nan, np.array([]))
    values = np.append(np.asarray(x, dtype=float), det)
    u = (stats.rankdata(values) - (n + 2) / 2) / (n + 1)
    distance = np.abs(u)
    p = float(np.mean(distance >= distance[-1] - 1e-12))
    lowest, highest = values.min(), values.max()
    unique_ends = int((values == lowest).sum() == 1) + int((values == highest).sum() == 1)
    return Position(
        below=int((x < det).sum()),
        ties=int((x == det).sum()),
        above=int((x > det).sum()),
        p=p,
        p_min=float(np.mean(distance >= distance.max() - 1e-12)),
        p_outside=unique_ends / (n + 1),
        u=u,
    )


def poisson_binomial_sf(k: int, probabilities: Sequence[float]) -> float:
    """P(at least k successes) among independent trials with these chances: exact, by convolution."""
    pmf = np.array([1.0])
    for q in probabilities:
        pmf = np.convolve(pmf, [1 - q, q])
    return float(pmf[k:].sum()) if k < len(pmf) else 0.0


@dataclass(frozen=True)
class Pooled:
    """Across configurations: how often det lies outside its runs, and whether it leans one way."""

    configs: int  # configurations with det and at least one run
    outside: int  # of them, det strictly outside the range of all its runs
    expected: float  # how many the null expects (the sum of each configuration's p_outside)
    p_outside: float  # P(at least `outside`) under the null: exact (Poisson-binomial)
    below: int  # configurations where det is below every run
    above: int  # ... above every run
    lean: float  # mean centred mid-rank of det, in (-0.5, 0.5): + above the runs, - below
    p_lean: float  # two-sided permutation p of |lean| (within each configuration)


def pooled_position(positions: Sequence[Position], draws: int = MONTE_CARLO) -> Pooled:
    """Pooled over configurations, distribution-free. Per configuration the rank p cannot go below
    2 / (n + 1) (0.095 with 20 runs), so it cannot see what many configurations together show."""
    used = [p for p in positions if p.u.size]
    if not used:
        return Pooled(0, 0, np.nan, np.nan, 0, 0, np.nan, np.nan)
    outside_flags = [p.below == 0 and p.ties == 0 or p.above == 0 and p.ties == 0 for p in used]
    outside = int(sum(outside_flags))
    chances = [p.p_outside for p in used]
    lean = float(np.mean([p.u[-1] for p in used]))
    rng = np.random.default_rng(SEED)
    null = np.zeros(draws)
    for p in used:  # why: det's label is exchangeable only within its configuration (a stratified null)
        null += p.u[rng.integers(0, p.u.size, draws)]
    null /= len(used)
    p_lean = float((1 + np.sum(np.abs(null) >= abs(lean) - 1e-12)) / (1 + draws))
    return Pooled(
        configs=len(used),
        outside=outside,
        expected=float(sum(chances)),
        p_outside=poisson_binomial_sf(outside, chances),
        below=sum(p.above > 0 and p.below == 0 and p.ties == 0 for p in used),
        above=sum(p.below > 0 and p.above == 0 and p.ties == 0 for p in used),
        lean=lean,
        p_lean=p_lean,
    )


def two_sample_permutation(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], draws: int = MONTE_CARLO
) -> tuple[float, float]:
    """Do the b samples score higher or lower than the a samples? (mean over strata of mean(b) -
    mean(a), two-sided p with side labels permuted within each stratum). Every run counts, copies
    too: they are draws. Exact-valid Monte Carlo (p >= 1 / (draws + 1)); NaN with nothing to permute."""
    used = [(np.asarray(a, float), np.asarray(b, float)) for a, b in pairs if len(a) and len(b)]
    used = [(a, b) for a, b in used if varies(np.concatenate([a, b]))]
    if not used:
        return np.nan, np.nan
    rng = np.random.default_rng(SEED)
    observed = float(np.mean([b.mean() - a.mean() for a, b in used]))
    null = np.zeros(draws)
    for a, b in used:
        both = np.concatenate([a, b])
        shuffled = rng.permuted(np.broadcast_to(both, (draws, len(both))), axis=1)
        null += shuffled[:, len(a) :].mean(axis=1) - shuffled[:, : len(a)].mean(axis=1)
    null /= len(used)
    p = (1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + draws)
    return observed, float(p)


def pair_share(diff: float, groups: Sequence[np.ndarray]) -> tuple[float, int]:
    """How ordinary a difference is beside the noise: (1 + pairs of runs within a group that differ
    by at least |diff|) / (1 + pairs), and the number of pairs. A rank p-value if |diff| behaved as
    the difference of two runs of one group."""
    gaps = [np.abs(g[:, None] - g[None, :])[np.triu_indices(len(g), 1)] for g in map(np.asarray, groups) if len(g) > 1]
    every = np.concatenate(gaps) if gaps else np.array([])
    if not every.size or np.isnan(diff):
        return np.nan, 0
    return float((1 + np.sum(every >= abs(diff) - RESOLUTION_PTS)) / (1 + every.size)), int(every.size)


def prediction_test(det: float, x: np.ndarray) -> tuple[float, float]:
    """Normal theory, kept for comparison: t = (det - mean) / (s sqrt(1 + 1/n)), n - 1 df, two-sided.
    On a few atoms it extrapolates a normal tail (a run with s = 0.022 gave p = 6e-6); `position`
    is the test that holds. NaN where the runs do not vary."""
    n = len(x)
    if n < 2 or not varies(x) or np.isnan(det):
        return np.nan, np.nan
    t = (det - float(np.mean(x))) / (sd(x) * np.sqrt(1 + 1 / n))
    return float(t), float(2 * stats.t.sf(abs(t), n - 1))


def one_sample_t(det: float, x: np.ndarray) -> tuple[float, float]:
    """The reference study's Table V test (normal theory): does the runs' mean equal det exactly?
    With many runs it rejects even when det is an ordinary draw (38% at n = 6 in the first review's
    simulation). NaN where the runs do not vary: their mean is then a fact, not an estimate."""
    if len(x) < 2 or not varies(x) or np.isnan(det):
        return np.nan, np.nan
    res = stats.ttest_1samp(np.asarray(x) - x[0], popmean=det - x[0])
    return float(res.statistic), float(res.pvalue)


def holm(pvalues: pd.Series) -> pd.Series:
    """Holm-adjusted p-values over the non-NaN entries (NaN stays NaN and is not counted in m)."""
    valid = pvalues.dropna()
    if valid.empty:
        return pvalues.astype(float)
    adjusted = multipletests(valid.to_numpy(dtype=float), method="holm")[1]
    return pd.Series(adjusted, index=valid.index).reindex(pvalues.index)


# --- does the mode shift the score? (the seed is the unit) ------------------------------------------


@dataclass(frozen=True)
class Shift:
    seeds: int
    mean: float  # mean over seeds of the differences, points
    lo: float
    hi: float  # t interval of that mean (normal theory over seeds)
    p: float  # paired t-test, seeds - 1 df
    p_signflip: float  # sign-flip permutation test over seeds: no normality, exact up to 16 seeds
    p_signflip_min: float  # the smallest p the sign-flip test can give with this many seeds
    exact: bool  # p_signflip enumerated every sign pattern (False: Monte Carlo)
    p_equivalent: float  # TOST against +-margin: small p means |shift| < margin is shown
    detectable: float  # the |shift| the t-test over these seeds finds with 80% power, points
    sd: float  # sd of the differences over seeds (0: every seed moved alike)


def seed_shift(diffs: np.ndarray, margin: float, confidence: float = 0.95, target: float = 0.8) -> Shift:
    """Does the mode move the score? Each seed gives one difference, so the seed is the unit of
    replication and the repeats only sharpen each seed's mean. Beside the test: the interval, the
    equivalence test against `margin`, and the shift the study had `target` power to detect, so that
    "no shift detected" always says what shift it could have missed."""
    from statsmodels.stats.weightstats import DescrStatsW

    d = np.asarray(diffs, dtype=float)
    k, alpha = len(d), 1 - confidence
    mean = float(d.mean()) if k else np.nan
    spread = sd(d)
    if k < 2:
        return Shift(k, mean, np.nan, np.nan, np.nan, np.nan, np.nan, False, np.nan, np.nan, spread)
    exact = 2**k <= 2**16
    flips = stats.permutation_test(
        (d,),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",
        n_resamples=2**16 if exact else MONTE_CARLO,
        alternative="two-sided",
        rng=np.random.default_rng(SEED),
    )
    p_signflip = min(1.0, float(flips.pvalue)) if np.any(d != 0) else 1.0
    if spread > 0:
        centre, half = mean, stats.t.ppf(0.5 + confidence / 2, k - 1) * spread / np.sqrt(k)
        p = float(stats.ttest_1samp(d - d[0], -d[0]).pvalue)
        p_equivalent = float(DescrStatsW(d).ttost_mean(-margin, margin)[0])
        lo, hi = centre - half, centre + half
    else:  # every seed moved alike: the shift is that value, exactly, and no t-test applies
        lo = hi = mean
        p = np.nan
        p_equivalent = 0.0 if abs(mean) < margin else 1.0
    return Shift(
        seeds=k,
        mean=mean,
        lo=lo,
        hi=hi,
        p=p,
        p_signflip=p_signflip,
        p_signflip_min=min(1.0, 2 / 2**k),
        exact=exact,
        p_equivalent=p_equivalent,
        detectable=detectable_shift(k, spread, alpha, target, prediction=False),
        sd=spread,
    )


# --- spreads and their shares: grouped-jackknife intervals ------------------------------------------


def pooled_variance(groups: Sequence[np.ndarray]) -> tuple[float, int]:
    """The within-group variance pooled over groups (0 exactly where no group varies), and its df."""
    dof = sum(len(g) - 1 for g in groups if len(g))
    if dof < 1:
        return np.nan, dof
    squares = sum(float(((g - g.mean()) ** 2).sum()) for g in groups if varies(g))
    return squares / dof, dof


def distinct_dof(groups: Sequence[np.ndarray]) -> int:
    """Degrees of freedom a lumpy sample carries about its spread: distinct values beyond one per
    group (twenty runs on four outcomes say about as much as four draws). At least 1."""
    return max(1, sum(len(np.unique(g)) - 1 for g in groups if len(g)))


def jackknife_interval(
    groups: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], float],
    scale: tuple[Callable[[float], float], Callable[[float], float]],
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Interval for statistic(groups): its delete-one-run jackknife standard error on a scale where
    it is near normal (log for spreads, logit for shares), and a t quantile with distinct_dof
    degrees of freedom. Runs are left out within their own group, so the groups (seeds, modes) stay
    fixed. By simulation on the real studies' outcomes it covers at 6, 20 and 100 runs per group
    (bench/noise_model.py), where the bootstrap covered 61% at 6 and chi-square 86% at 20."""
    forward, back = scale
    estimate = statistic(list(groups))
    if not np.isfinite(estimate):
        return np.nan, np.nan
    values, weights = [], []
    for i, g in enumerate(groups):
        # why: leaving out either of two equal runs gives one value; lumpy runs need a handful per group
        distinct, first, counts = np.unique(g, return_index=True, return_counts=True)
        for j, count in zip(first, counts):
            left = [*groups[:i], np.delete(g, j), *groups[i + 1 :]]
            values.append(forward(statistic(left)))
            weights.append(count)
    leave, weight = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    finite = np.isfinite(leave)
    leave, weight = leave[finite], weight[finite]
    total = weight.sum()
    if total < 2:
        return np.nan, np.nan
    centre_leave = np.sum(weight * leave) / total
    se = np.sqrt((total - 1) / total * np.sum(weight * (leave - centre_leave) ** 2))
    q = stats.t.ppf(0.5 + confidence / 2, distinct_dof(groups))
    centre = forward(estimate)
    return float(back(centre - q * se)), float(back(centre + q * se))


_EDGE = 1e-6  # why: a share of exactly 0 or 1 has no logit; it is held just inside


def _log(v: float) -> float:
    return float(np.log(v)) if v > 0 else -np.inf


def _logit(p: float) -> float:
    p = min(max(p, _EDGE), 1 - _EDGE)
    return float(np.log(p / (1 - p)))


LOG = (_log, np.exp)
LOGIT = (_logit, lambda z: float(1 / (1 + np.exp(-z))))


def pooled_sd(groups: Sequence[np.ndarray]) -> float:
    variance, _ = pooled_variance(groups)
    return float(np.sqrt(variance)) if np.isfinite(variance) else np.nan


@dataclass(frozen=True)
class Components:
    seeds: int
    runs: int
    var_seed: float  # what changing the seed adds (one-way ANOVA, truncated at 0)
    var_seed_raw: float  # the estimate before truncation (negative: seeds vary less than chance)
    var_cuda: float  # within-seed variance, pooled
    share_cuda: float  # var_cuda / (var_seed + var_cuda)
    share_cuda_lo: float
    share_cuda_hi: float  # grouped-jackknife interval (logit scale), the seeds held fixed


def cuda_share(groups: Sequence[np.ndarray]) -> float:
    """var_cuda / (var_seed + var_cuda) from a one-way random-effects ANOVA (Searle's unbalanced n0)."""
    return _components(groups)[2]


def _components(groups: Sequence[np.ndarray]) -> tuple[float, float, float]:
    groups = [g for g in groups if len(g)]
    k, n = len(groups), sum(len(g) for g in groups)
    within, dof = pooled_variance(groups)
    if k < 2 or dof < 1:
        return np.nan, within, np.nan
    grand = np.concatenate(groups).mean()
    between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (k - 1)
    n0 = (n - sum(len(g) ** 2 for g in groups) / n) / (k - 1)
    raw = (between - within) / n0
    total = max(raw, 0.0) + within
    return raw, within, (within / total if total > 0 else np.nan)


def random_effects(groups: Sequence[np.ndarray], confidence: float = 0.95) -> Components:
    """How much of the runs' variance is CUDA noise (within a seed) and how much the seed adds,
    for these seeds: the interval resamples runs within each seed, the seeds held fixed."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    raw, within, share = _components(groups)
    lo = hi = np.nan
    if np.isfinite(share) and within > 0:
        lo, hi = jackknife_interval(groups, cuda_share, LOGIT, confidence)
    return Components(
        seeds=len(groups),
        runs=sum(len(g) for g in groups),
        var_seed=max(raw, 0.0) if np.isfinite(raw) else np.nan,
        var_seed_raw=raw,
        var_cuda=within,
        share_cuda=share,
        share_cuda_lo=lo,
        share_cuda_hi=hi,
    )


def variance_ratio(source: Sequence[np.ndarray], reference: Sequence[np.ndarray], confidence: float = 0.95) -> tuple:
    """var(source) / var(reference), each pooled within its groups, with its grouped-jackknife
    interval (log scale): how much of the reference's spread one source alone reproduces."""
    groups = [np.asarray(g, dtype=float) for g in [*source, *reference]]
    k = len(source)

    def ratio(gs: list[np.ndarray]) -> float:
        den = pooled_variance(gs[k:])[0]
        return pooled_variance(gs[:k])[0] / den if den > 0 else np.nan

    estimate = ratio(groups)
    if not (np.isfinite(estimate) and estimate > 0):
        return estimate, np.nan, np.nan
    return (estimate, *jackknife_interval(groups, ratio, LOG, confidence))


# --- power and design ----------------------------------------------------------------------------


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
    delta: float, spread: float, alpha: float = 0.05, target: float = 0.8, max_n: int = 100_000
) -> int | None:
    """Fewest observations (>= 2) for a one-sample t-test to detect a true shift of `delta` with
    probability `target`; None where the spread is not positive or no n up to max_n does."""
    if not spread > 0 or not np.isfinite(spread):
        return None
    effect = abs(delta) / spread
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


def rank_repeats_needed(
    delta: float, residuals: np.ndarray, alpha: float = 0.05, target: float = 0.8, max_n: int = 10_000
) -> int | None:
    """Fewest runs for the rank test (`position`) to find a det that lies `delta` points from its
    configuration's centre, with probability `target`, when runs scatter as `residuals` (runs minus
    their configuration's mean, pooled, mirrored so both directions count). det is found when at
    most m runs reach beyond it, m = floor(alpha (n + 1) / 2) - 1; so even a det beyond every run
    needs n >= 2 / alpha - 1 (39 at 0.05). None if no n up to max_n does."""
    r = np.concatenate([residuals, -residuals])
    beyond = float(np.mean(r >= abs(delta))) if len(r) else 0.0  # a run as far out as det, ties counted
    n = np.arange(1, max_n + 1)
    m = np.floor(alpha * (n + 1) / 2) - 1
    found = (m >= 0) & (stats.binom.cdf(m, n, beyond) >= target)
    return int(n[found.argmax()]) if found.any() else None


def detectable_shift(n: int, spread: float, alpha: float = 0.05, target: float = 0.8, prediction: bool = True) -> float:
    """The smallest shift (same unit as spread) a t-test on n observations detects with probability
    `target`; for the prediction test the noise of the single new draw counts too (sd sqrt(1 + 1/n))."""
    if n < 2 or not spread > 0:
        return np.nan
    scale = spread * np.sqrt(1 + 1 / n) if prediction else spread / np.sqrt(n)
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def achieved(shift: float) -> float:
        nc = shift / scale
        return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc)) - target

    hi = scale
    while achieved(hi) < 0:
        hi *= 2
    return float(brentq(achieved, 0.0, hi, xtol=1e-9 * scale))
