import numpy as np
import pytest

from ingestion.derive import moe


@pytest.mark.parametrize(
    ("moes", "estimates", "expected"),
    [
        ([100.0, 50.0], [10.0, 20.0], 111.80339887498948),  # sqrt(100^2 + 50^2)
        ([30.0, 40.0, 20.0], [0.0, 0.0, 10.0], 44.721359549995796),  # only the largest zero MOE
        ([30.0, 40.0], [0.0, 0.0], 40.0),
        ([25.0], [7.0], 25.0),
    ],
)
def test_moe_sum(moes, estimates, expected):
    assert moe.moe_sum(np.array([moes]), np.array([estimates]))[0] == pytest.approx(expected)


def test_moe_proportion_and_fallback_to_ratio():
    # sqrt(30^2 - 0.2^2 * 50^2) / 1000
    assert moe.moe_proportion(200, 1000, 30, 50) == pytest.approx(np.sqrt(800) / 1000)
    # 30^2 - 0.9^2 * 100^2 < 0, so the ratio formula: sqrt(30^2 + 0.81 * 100^2) / 1000
    assert moe.moe_proportion(900, 1000, 30, 100) == pytest.approx(np.sqrt(9000) / 1000)


def test_moe_ratio_and_product():
    assert moe.moe_ratio(500, 250, 20, 10) == pytest.approx(np.sqrt(20**2 + 4 * 10**2) / 250)
    assert moe.moe_product(100, 0.5, 10, 0.1) == pytest.approx(np.sqrt(100**2 * 0.01 + 0.25 * 100))


def test_cv_and_reliability_classes():
    cv = moe.coefficient_of_variation(np.array([1000.0, 100.0, 10.0, 0.0, 50.0]),
                                      np.array([164.5, 32.9, 16.45, 5.0, np.nan]))
    assert cv[:3] == pytest.approx([10.0, 20.0, 100.0])
    assert np.isnan(cv[3]) and np.isnan(cv[4])
    classes = moe.reliability_class(cv, np.array([164.5, 32.9, 16.45, 5.0, np.nan]), high=12, medium=40)
    assert classes.tolist() == ["high", "medium", "low", "low", "unknown"]


def test_reliability_boundaries_are_inclusive():
    classes = moe.reliability_class(np.array([12.0, 40.0, 40.0001]), np.ones(3), high=12, medium=40)
    assert classes.tolist() == ["high", "medium", "low"]


def test_controlled_zero_estimate_is_high():
    assert moe.reliability_class(np.array([np.nan]), np.array([0.0]), high=12, medium=40).tolist() == ["high"]


def test_proportion_matches_the_acs_handbook_worked_example():
    # ACS General Handbook (2018), ch. 8: never-married females 203,119 (MOE 5,070) of all
    # females 630,498 (MOE 831); the handbook gives P = 0.3222 with MOE 0.0080.
    p = 203_119 / 630_498
    assert round(p, 4) == 0.3222
    assert round(float(moe.moe_proportion(203_119, 630_498, 5_070, 831)), 4) == 0.0080


@pytest.mark.parametrize(("estimates", "moes", "expected"), [
    ([36, 0, 0, 0], [56, 25, 28, 31], 64.0078),  # sqrt(56^2 + 31^2): the largest zero MOE only
    ([0, 58], [24, 62], 66.4831),                 # sqrt(62^2 + 24^2)
    ([0, 0, 0], [27, 19, 22], 27.0),              # all zero: the largest MOE
    ([73, 22], [49, 26], 55.4707),                # sqrt(49^2 + 26^2)
])
def test_sum_matches_the_published_zero_estimate_examples(estimates, moes, expected):
    # The worked groups of the ACS Data Users Group thread "calculating approximated MOE's for
    # summed estimates that =0" (acsdatacommunity.prb.org, 2017), which apply slide 26 of the
    # Census Bureau's 2016 MOE training ("use only the largest MOE of the zero estimates").
    got = moe.moe_sum(np.array([moes], dtype=float), np.array([estimates], dtype=float))[0]
    assert round(float(got), 4) == expected


def test_average_gross_rent_falls_back_from_proportion_to_ratio():
    # ACS 2022 1-year, United States (ACS Data Users Group thread "MOEs for derived averages"):
    # aggregate gross rent B25065_001 = 63,086,890,700 +/- 234,476,359 over renters paying cash
    # rent B25063_002 = 42,971,061 +/- 162,515. The mean is 1,468.13; the proportion formula's
    # radicand 234,476,359^2 - 1,468.125^2 * 162,515^2 = -1.95e15 is negative, so the handbook
    # says to use the ratio formula: sqrt(234,476,359^2 + 1,468.125^2 * 162,515^2) / 42,971,061
    # = 7.78 (hand-computed).
    x, y, mx, my = 63_086_890_700, 42_971_061, 234_476_359, 162_515
    assert round(x / y, 2) == 1468.13
    assert round(float(moe.moe_proportion(x, y, mx, my)), 2) == 7.78
    assert moe.moe_proportion(x, y, mx, my) == pytest.approx(moe.moe_ratio(x, y, mx, my))
