"""Does the memory help? MemAE against AE over the same runs, as a paired test.

Two methods' records pair up when they share dataset, normal class and seed (one-class
tables: class × seed pairs; KDDCUP99 and video: seed pairs). The per-pair difference is
tested by the Wilcoxon signed-rank test (two-sided) and its mean given with a t interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairedTest:
    """``a`` against ``b`` on one dataset and metric, over the runs both have."""

    a: str
    b: str
    dataset: str
    metric: str
    n_pairs: int
    n_classes: int | None
    n_seeds: int
    mean_a: float
    mean_b: float
    #: mean over pairs of (a − b), and its two-sided ``level`` t interval
    difference: float
    ci_low: float
    ci_high: float
    level: float
    #: pairs in which a is higher, lower
    wins: int
    losses: int
    #: two-sided Wilcoxon signed-rank p-value; None when every difference is zero or n < 2
    p_value: float | None


def paired_test(
    records: list[dict[str, Any]],
    dataset: str,
    metric: str,
    a: str = "MemAE",
    b: str = "AE",
    level: float = 0.95,
) -> PairedTest | None:
    """Pair the records of methods ``a`` and ``b`` on ``dataset`` by (class, seed) and test
    the differences of ``metric``; None when no pair exists."""
    from scipy import stats

    runs: dict[str, dict[tuple[Any, int], float]] = {a: {}, b: {}}
    for rec in records:
        if rec["dataset"] == dataset and rec["method"] in runs and metric in rec["metrics"]:
            runs[rec["method"]][(rec.get("normal_class"), int(rec["seed"]))] = float(rec["metrics"][metric])
    keys = sorted(set(runs[a]) & set(runs[b]), key=lambda k: (-1 if k[0] is None else k[0], k[1]))
    if not keys:
        return None
    x = np.array([runs[a][k] for k in keys])
    y = np.array([runs[b][k] for k in keys])
    d = x - y
    n = len(d)
    mean = float(d.mean())
    if n > 1:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    else:
        half = math.inf
    p = float(stats.wilcoxon(x, y).pvalue) if n > 1 and np.any(d != 0) else None
    classes = {k[0] for k in keys if k[0] is not None}
    return PairedTest(
        a=a,
        b=b,
        dataset=dataset,
        metric=metric,
        n_pairs=n,
        n_classes=len(classes) or None,
        n_seeds=len({k[1] for k in keys}),
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        difference=mean,
        ci_low=mean - half,
        ci_high=mean + half,
        level=level,
        wins=int((d > 0).sum()),
        losses=int((d < 0).sum()),
        p_value=p,
    )


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _pairs(test: PairedTest) -> str:
    if test.n_classes:
        return f"{test.n_pairs} class × seed pairs ({test.n_classes} classes, {test.n_seeds} seeds)"
    return f"{test.n_pairs} seed pairs"


def p_text(test: PairedTest) -> str:
    """The Wilcoxon p-value as the tables print it (``–`` where there is none)."""
    return "–" if test.p_value is None else f"{test.p_value:.3g}"


def agreement(test: PairedTest, paper_difference: float | None, alpha: float = 0.05) -> str:
    """``"agrees"``, ``"not confirmed"`` or ``"disagrees"``: how our pairs stand to the sign of
    the paper's a − b (``"no paper value"`` without one) at level ``alpha``."""
    if paper_difference is None:
        return "no paper value"
    if test.p_value is None or test.p_value >= alpha:
        return "not confirmed"
    return "agrees" if (test.difference > 0) == (paper_difference > 0) else "disagrees"


def verdict(test: PairedTest, paper_difference: float | None, alpha: float = 0.05) -> str:
    """One plain sentence: whether our pairs agree with the paper's ordering of a and b."""
    gap = f"{test.a} − {test.b}"
    paper = "" if paper_difference is None else f"the paper's {gap} is {_signed(paper_difference)}"
    whose = "" if paper_difference is None else f"whose {gap} is {_signed(paper_difference)}"
    if test.p_value is None or test.p_value >= alpha:
        shown = f"p = {p_text(test)}" if test.p_value is not None else "no pair differs"
        floor = 2.0 ** (1 - test.n_pairs)
        if floor >= alpha:
            shown += f"; with {test.n_pairs} pairs the test cannot go below p = {floor:.3g}"
        return f"{test.a} and {test.b} cannot be told apart on these runs ({shown})" + (
            f"; {paper}, which they do not confirm." if paper else "."
        )
    higher = test.a if test.difference > 0 else test.b
    found = f"{higher} is higher on these runs (p = {p_text(test)})"
    state = agreement(test, paper_difference, alpha)
    if state == "agrees":
        return f"{found}, as in the paper, {whose}."
    if state == "disagrees":
        return f"{found}: we disagree with the paper, {whose}."
    return f"{found}; the paper gives no value to compare."


def level_sentence(test: PairedTest, paper: Mapping[str, float | None]) -> str:
    """One plain sentence: our means of a and b beside the paper's."""
    parts = []
    for method, ours in ((test.a, test.mean_a), (test.b, test.mean_b)):
        theirs = paper.get(method)
        if theirs is None:
            parts.append(f"our {method} {ours:.4f} (no paper value)")
            continue
        gap = ours - theirs
        where = "above" if gap > 0 else "below"
        parts.append(f"our {method} {ours:.4f} is {abs(gap):.4f} {where} the paper's {theirs:.4f}")
    return "On these pairs " + "; ".join(parts) + "."


def paired_markdown(
    tests: list[tuple[PairedTest, Mapping[str, float | None]]], heading: str = ""
) -> list[str]:
    """Markdown lines: one row per test (with the paper's a and b) and its sentences."""
    if not tests:
        return []
    first = tests[0][0]
    lines = [
        heading
        or (
            f"{first.a} against {first.b}, paired by run (same dataset, class and seed): mean difference "
            f"{first.a} − {first.b} with its {first.level:.0%} t interval, the two-sided Wilcoxon "
            "signed-rank p-value, and the pairs each way. Both treat the pairs as independent; the "
            "seeds of one class share its task, so over class × seed pairs they lean optimistic."
        ),
        "",
        f"| dataset | metric | pairs | {first.a} − {first.b} | {first.level:.0%} interval | "
        f"Wilcoxon p | {first.a} higher / lower | paper {first.a} − {first.b} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sentences = []
    for test, paper in tests:
        paper_diff = (
            None
            if paper.get(test.a) is None or paper.get(test.b) is None
            else float(paper[test.a]) - float(paper[test.b])  # type: ignore[arg-type]
        )
        lines.append(
            f"| {test.dataset} | {test.metric} | {_pairs(test)} | {_signed(test.difference)} | "
            f"[{_signed(test.ci_low)}, {_signed(test.ci_high)}] | {p_text(test)} | "
            f"{test.wins} / {test.losses} | {'–' if paper_diff is None else _signed(paper_diff)} |"
        )
        sentences.append(f"- **{test.dataset}**: {verdict(test, paper_diff)} {level_sentence(test, paper)}")
    return [*lines, "", *sentences, ""]


__all__ = ["PairedTest", "agreement", "level_sentence", "paired_markdown", "paired_test", "verdict"]
