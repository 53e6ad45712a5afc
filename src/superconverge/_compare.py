"""Comparisons of losses that hold for any sign.

The recipe's rules compare losses by ratios ("1.5x the best epoch's", "beats it by more than
2%"), which mean what they say only for positive losses. A loss may be negative: `loss_fn` is
any callable (a Gaussian negative log-likelihood, a loss minus a constant), and there
``-4.6 > 1.5 x -3.8`` called a *better* epoch a stall, restored its starting weights and halved
the LR. Each rule here is the ratio rule for a positive reference and the same distance, measured
in units of the reference's size, for any other.

Plain Python (stdlib only).
"""

from __future__ import annotations

import math


def beats(loss: float, reference: float, margin: float) -> bool:
    """`loss` is lower than `reference` by more than `margin` of its size
    (``loss < reference * (1 - margin)`` for a positive reference).

    Example:
        >>> beats(0.295, 0.30, 0.02), beats(0.28, 0.30, 0.02), beats(-4.4, -4.3, 0.02)
        (False, True, True)
        >>> beats(-4.33, -4.3, 0.02)  # lower, but by less than 2% of 4.3
        False
    """
    return loss < reference - margin * abs(reference)


def worse(loss: float, reference: float, factor: float) -> bool:
    """`loss` is above `reference` by more than ``factor - 1`` of its size
    (``loss > factor * reference`` for a positive reference).

    Example:
        >>> worse(1.6, 1.0, 1.5), worse(1.4, 1.0, 1.5), worse(-4.6, -3.8, 1.5), worse(-1.5, -3.8, 1.5)
        (True, False, False, True)
    """
    return loss - reference > (factor - 1.0) * abs(reference)


def gain(loss: float, reference: float) -> float:
    """How much lower `loss` is than `reference`, as a fraction of its size (inf for a
    reference of 0 and a lower loss).

    Example:
        >>> round(gain(0.25, 0.30), 3), round(gain(-4.56, -4.35), 3)
        (0.167, 0.048)
    """
    if reference == 0:
        return math.inf if loss < 0 else 0.0
    return (reference - loss) / abs(reference)


def times(loss: float, reference: float, digits: str = ".2g") -> str:
    """`loss` against `reference` in words: ``1.3x`` when both are positive, else the distance.

    Example:
        >>> times(1.31, 0.12, ".1f"), times(-1.5, -3.8)
        ('10.9x', '2.3 above')
    """
    if reference > 0 and loss >= 0:
        return f"{loss / reference:{digits}}x"
    return f"{abs(loss - reference):.3g} {'above' if loss >= reference else 'below'}"
