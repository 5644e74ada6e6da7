import numpy as np
import pytest

from allpayer.synth.ids import (
    loinc_check_digit,
    loinc_code,
    luhn_valid,
    make_npis,
    make_tins,
    npi_check_digit,
    prefixed_ids,
    scramble,
    unique_numbers,
)
from tests.synth.formats import valid


def test_npi_check_digit_matches_the_cms_example():
    # CMS's worked example: 123456789 with prefix 80840 has check digit 3 -> 1234567893
    assert npi_check_digit(np.array([123456789])).tolist() == [3]
    assert luhn_valid("1234567893", prefix="80840")
    assert not luhn_valid("1234567894", prefix="80840")


def test_loinc_check_digits_of_the_codes_the_engine_reads():
    assert loinc_check_digit(np.array([4548, 8480, 8462, 2345])).tolist() == [4, 6, 4, 7]
    assert loinc_code(4548) == "4548-4"


def test_npis_are_unique_valid_and_typed():
    rng = np.random.default_rng(0)
    org = np.arange(500) % 3 == 0
    npis = make_npis(rng, 500, org)
    assert len(set(npis)) == 500
    assert all(valid("npi", x) for x in npis)
    assert all(x[0] == ("2" if o else "1") for x, o in zip(npis, org))


def test_tins_are_nine_digits_and_unique():
    tins = make_tins(np.random.default_rng(1), 300)
    assert len(set(tins)) == 300
    assert all(valid("tin", t) for t in tins)


def test_unique_numbers_in_range():
    rng = np.random.default_rng(2)
    for n, lo, hi in ((10, 0, 12), (1000, 5, 10**8)):
        x = unique_numbers(rng, n, lo, hi)
        assert len(np.unique(x)) == n and x.min() >= lo and x.max() < hi
    with pytest.raises(ValueError):
        unique_numbers(rng, 5, 0, 3)


def test_scramble_is_a_bijection():
    x = np.arange(10_000)
    y = scramble(x, 10_000, 7_919, 13)
    assert sorted(y.tolist()) == x.tolist()
    assert not np.array_equal(x, y)


def test_prefixed_ids():
    assert prefixed_ids("P", np.array([7, 123]), 5).to_pylist() == ["P00007", "P00123"]
