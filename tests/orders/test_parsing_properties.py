"""Property tests (hypothesis) for the money and time parsing at the API's edge: every input either parses to the
right value or is refused with the contract's 400, never another exception, and always cheaply."""
import datetime as dt
import time
from decimal import Decimal

from hypothesis import given, settings, strategies as st

import errors
from services.orders.booking import parse_amount_fen
from services.formats import iso, parse_iso, yuan

FAST = settings(max_examples=300, deadline=None, database=None)


def _amount(raw):
    """parse_amount_fen's result, or 'refused' for its 400; anything else raised fails the test."""
    started = time.process_time()
    try:
        return parse_amount_fen(raw)
    except errors.ServiceError as e:
        assert e.status == 400 and e.code == "INVALID_REQUEST"
        return "refused"
    finally:
        assert time.process_time() - started < 0.05


@FAST
@given(st.integers(min_value=0, max_value=10**12))
def test_yuan_strings_round_trip_to_fen(fen):
    assert _amount(yuan(fen)) == fen


@FAST
@given(st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=2, allow_nan=False))
def test_two_decimal_amounts_are_exact_in_fen(value):
    assert _amount(str(value)) == int(value * 100)
    assert _amount(format(value, "e")) in (int(value * 100), -1)  # exponent form: exact or "not the price"


@FAST
@given(st.decimals(allow_nan=False, allow_infinity=False).filter(lambda d: d != d.quantize(Decimal("0.01"))
                                                                 if abs(d.adjusted()) < 20 else True))
def test_fractions_of_a_fen_never_match_a_price(value):
    assert _amount(str(value)) in (-1, "refused")


@FAST
@given(st.one_of(st.text(max_size=200), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                 st.booleans(), st.none(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(), st.text(),
                                                                                               max_size=2)))
def test_any_json_value_parses_or_is_refused(raw):
    result = _amount(raw)
    assert result is None or result == "refused" or isinstance(result, int)


@FAST
@given(st.sampled_from(["1e", "9" * 5000, "1e" + "9" * 5000, "-" + "1" * 70000, "0." + "0" * 5000 + "1",
                        "." * 100, "+-1", "1_000", "١٢٣"]))
def test_huge_or_odd_text_is_cheap(raw):
    _amount(raw)


AWARE = st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2199, 12, 30),
                     timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=8)),
                                                dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
                                                dt.timezone(dt.timedelta(hours=14))]))


@FAST
@given(AWARE)
def test_iso_times_with_an_offset_parse_to_the_same_instant(moment):
    parsed = parse_iso(moment.isoformat())
    assert parsed == moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    assert parse_iso(iso(parsed)) == parsed.replace(microsecond=0)


@FAST
@given(st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2199, 12, 30)))
def test_times_without_an_offset_are_refused(moment):
    try:
        parse_iso(moment.isoformat())
    except ValueError:
        return
    raise AssertionError("a time without an offset was accepted")


@FAST
@given(st.one_of(st.text(max_size=100), st.datetimes(timezones=st.just(dt.timezone(dt.timedelta(hours=-23)))).map(
    lambda d: d.isoformat())))
def test_any_text_parses_in_range_or_raises_value_error(text):
    started = time.process_time()
    try:
        parsed = parse_iso(text)
    except ValueError:
        return
    finally:
        assert time.process_time() - started < 0.05
    assert 1999 <= parsed.year <= 2201
