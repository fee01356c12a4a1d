from decimal import Decimal

import pytest

from minik8s.quantity import cpu_millis, is_valid_quantity, parse_quantity, to_bytes


@pytest.mark.parametrize(("text", "expected"), [
    ("100m", Decimal("0.1")),
    ("1.5Gi", Decimal(1610612736)),
    ("128Mi", Decimal(128 * 2**20)),
    ("1Ki", Decimal(1024)),
    ("1Ei", Decimal(2**60)),
    ("2", Decimal(2)),
    ("0.5", Decimal("0.5")),
    (".5", Decimal("0.5")),
    ("1k", Decimal(1000)),
    ("1M", Decimal(10**6)),
    ("1G", Decimal(10**9)),
    ("1E", Decimal(10**18)),
    ("250u", Decimal("0.00025")),
    ("5n", Decimal("0.000000005")),
    ("1e3", Decimal(1000)),
    ("1E3", Decimal(1000)),
    ("1e-3", Decimal("0.001")),
    ("+1", Decimal(1)),
    ("-1", Decimal(-1)),
    (3, Decimal(3)),
    (0.1, Decimal("0.1")),
])
def test_parse(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("bad", ["12x", "", "-", "m", "1 ", " 1", "1.2.3", "1Kb", "1e", "Gi",
                                 "1e999", "١", True, None, float("nan"), float("inf")])
def test_parse_rejects(bad):
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(bad)
    assert not is_valid_quantity(bad)


def test_error_message_names_the_value():
    with pytest.raises(ValueError) as err:
        parse_quantity("12x")
    assert str(err.value) == "invalid quantity '12x'"


def test_cpu_millis_rounds_up():
    assert cpu_millis("100m") == 100
    assert cpu_millis("0.5") == 500
    assert cpu_millis(2) == 2000
    assert cpu_millis("1u") == 1
    assert cpu_millis("1.0001") == 1001


def test_to_bytes():
    assert to_bytes("1.5Gi") == 1610612736
    assert to_bytes("128Mi") == 134217728
    assert to_bytes("1k") == 1000
    assert to_bytes("100m") == 1
    assert to_bytes(10) == 10


def test_large_values_are_exact():
    assert to_bytes("123456789012345678901234567890Ei") == 123456789012345678901234567890 * 2**60
    assert cpu_millis("1e40") == 10**43


def test_is_valid_quantity():
    assert is_valid_quantity("1.5Gi")
    assert is_valid_quantity(1)
    assert not is_valid_quantity("12x")
