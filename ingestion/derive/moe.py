"""Margins of error for derived ACS estimates, by the Census Bureau's approximation formulas.

Formulas from "Understanding and Using American Community Survey Data: What All Data Users
Need to Know" (U.S. Census Bureau, 2020), chapter 8. All MOEs are at the 90% level
(SE = MOE / 1.645). Functions are vectorised over numpy arrays or pandas objects.
"""

from __future__ import annotations

import numpy as np

Z90 = 1.645


def moe_sum(moes: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """MOE of a sum or difference of estimates: the root of the sum of squared MOEs.

    When several of the summed estimates are zero, only the largest MOE among those zero
    estimates is counted (the handbook's rule, since their MOEs are not independent).

    Parameters
    ----------
    moes, estimates : array of shape (n_rows, n_terms)
        The terms' MOEs and estimates (signs of differences do not matter).

    Returns
    -------
    numpy.ndarray of shape (n_rows,)

    Examples
    --------
    >>> float(moe_sum(np.array([[30.0, 40.0, 20.0]]), np.array([[0.0, 0.0, 10.0]]))[0])
    44.721359549995796
    """
    moes = np.asarray(moes, dtype=float)
    zero = np.asarray(estimates, dtype=float) == 0
    nonzero_sq = np.where(zero, 0.0, moes**2).sum(axis=1)
    largest_zero = np.where(zero, moes, 0.0).max(axis=1, initial=0.0)
    return np.sqrt(nonzero_sq + largest_zero**2)


def moe_proportion(num, den, moe_num, moe_den) -> np.ndarray:
    """MOE of a proportion ``num / den`` whose numerator is a subset of its denominator.

    Falls back to the ratio formula where the term under the square root is negative,
    as the handbook instructs.

    Examples
    --------
    >>> float(moe_proportion(200.0, 1000.0, 30.0, 50.0))
    0.0282842712474619
    >>> float(moe_proportion(900.0, 1000.0, 30.0, 100.0))  # negative under the root
    0.09486832980505137
    """
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    moe_num, moe_den = np.asarray(moe_num, dtype=float), np.asarray(moe_den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = num / den
        under = moe_num**2 - p**2 * moe_den**2
        under = np.where(under < 0, moe_num**2 + p**2 * moe_den**2, under)
        return np.sqrt(under) / den


def moe_ratio(num, den, moe_num, moe_den) -> np.ndarray:
    """MOE of a ratio ``num / den`` whose numerator is not a subset of the denominator.

    Examples
    --------
    >>> float(moe_ratio(900.0, 1000.0, 30.0, 100.0))
    0.09486832980505137
    """
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
        return np.sqrt(np.asarray(moe_num, float) ** 2 + r**2 * np.asarray(moe_den, float) ** 2) / den


def moe_product(a, b, moe_a, moe_b) -> np.ndarray:
    """MOE of a product ``a * b``.

    Examples
    --------
    >>> float(moe_product(100.0, 0.5, 10.0, 0.1))
    11.180339887498949
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.sqrt(a**2 * np.asarray(moe_b, float) ** 2 + b**2 * np.asarray(moe_a, float) ** 2)


def coefficient_of_variation(estimate, moe) -> np.ndarray:
    """CV in percent: ``(MOE / 1.645) / estimate * 100``; undefined (NaN) for a zero estimate.

    Examples
    --------
    >>> float(coefficient_of_variation(1000.0, 164.5))
    10.0
    """
    estimate = np.asarray(estimate, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.abs(np.asarray(moe, dtype=float) / Z90 / estimate) * 100
    return np.where(estimate == 0, np.nan, cv)


def reliability_class(cv, moe, *, high: float, medium: float) -> np.ndarray:
    """Classify estimates as high, medium or low reliability by CV, or unknown without a MOE.

    A zero estimate has no CV: it is "low" when its MOE is positive (the interval is wide
    relative to nothing) and "high" when its MOE is zero (a controlled count).

    Parameters
    ----------
    cv, moe : array
        Coefficients of variation (percent) and MOEs.
    high, medium : float
        Largest CV (percent) of a high and of a medium reliability estimate.

    Examples
    --------
    >>> reliability_class(np.array([5.0, 30.0, 50.0, np.nan]), np.array([1, 1, 1, np.nan]),
    ...                   high=12, medium=40).tolist()
    ['high', 'medium', 'low', 'unknown']
    """
    cv, moe = np.asarray(cv, dtype=float), np.asarray(moe, dtype=float)
    by_cv = np.select([cv <= high, cv <= medium], ["high", "medium"], default="low")
    zero_estimate = np.where(moe > 0, "low", "high")
    return np.where(np.isnan(moe), "unknown", np.where(np.isnan(cv), zero_estimate, by_cv)).astype(object)
