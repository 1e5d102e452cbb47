"""Accuracy and macro-F1 of predicted labels against gold labels (no dependencies)."""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """The share of predictions equal to the gold label (0.0 for no examples)."""
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """The unweighted mean of the per-class F1 scores.

    As scikit-learn's ``f1_score(average="macro")``: the classes are those that occur in
    ``gold`` or ``predicted``, and a class with no true positive scores 0.
    """
    classes = sorted(set(gold) | set(predicted))
    if not classes:
        return 0.0
    scores = []
    for cls in classes:
        tp = sum(g == cls and p == cls for g, p in zip(gold, predicted))
        fp = sum(g != cls and p == cls for g, p in zip(gold, predicted))
        fn = sum(g == cls and p != cls for g, p in zip(gold, predicted))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)
