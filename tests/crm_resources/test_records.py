"""The shared field parsers: phone numbers match phonenumbers exactly, fast path or not; timestamps are UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest

from crm_resources.records import SkipRecord, phone, timestamp

SHAPES = [
    "07700 900123",
    "+44 7700 900123",
    "(07700) 900-123",
    "0044 7700900123",
    "07700.900.123",
    "+44 (0)7700 900123",
    "447700900123",
    "020 7946 0000",
    "+44 20 7946 0000",
    "07700 90012",  # one digit short
    "077009001234",  # one digit long
    "ext 12",
    "+1 415 555 2671",
]


def slow_path(value: str) -> str:
    try:
        parsed = phonenumbers.parse(value, "GB")
    except phonenumbers.NumberParseException:
        return value
    if not phonenumbers.is_possible_number(parsed):
        return value
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize("value", SHAPES)
def test_phone_is_e164_with_gb_default_or_kept_as_given(value: str) -> None:
    assert phone(value, "c1") == slow_path(value.strip())


@pytest.mark.parametrize("first", ["1", "2", "3", "7"])
def test_every_gb_ten_digit_layout_agrees_with_phonenumbers(first: str) -> None:
    """The fast path's numbers (mobiles 07, landlines 01/02, 03): the same answer as phonenumbers."""
    for n in range(0, 1_000_000_000, 7_919_777):
        digits = f"{first}{n:09d}"
        for layout in (
            f"0{digits}",
            f"+44 {digits[:4]} {digits[4:]}",
            f"0{digits[:4]}-{digits[4:]}",
            f"(0{digits[:2]}) {digits[2:6]} {digits[6:]}",
            f"0044 {digits}",
        ):
            assert phone(layout, "c1") == slow_path(layout), layout


UTC_MIDNIGHT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", UTC_MIDNIGHT),
        ("2026-01-01T00:00:00.5Z", UTC_MIDNIGHT.replace(microsecond=500_000)),
        ("2026-01-01T00:00:00+00:00", UTC_MIDNIGHT),
        ("2026-01-01T01:00:00+01:00", UTC_MIDNIGHT),
        ("2025-12-31T18:30:00-05:30", UTC_MIDNIGHT),
        ("2026-01-01T00:00:00", UTC_MIDNIGHT),  # no offset: read as UTC
        ("2026-01-01", UTC_MIDNIGHT),
        ("2026-01-01 00:00:00Z", UTC_MIDNIGHT),
        ("20260101T000000Z", UTC_MIDNIGHT),
    ],
)
def test_timestamps_are_read_as_aware_utc(value: str, expected: datetime) -> None:
    parsed = timestamp({"updated_at": value}, "updated_at", "c1")
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value", ["2026-01-01T00:00:00z", "2026-01-01T00:00:00ZZ", "Z", "2026-01-01T24:00:00Z", "soon"]
)
def test_a_malformed_timestamp_skips_the_record(value: str) -> None:
    with pytest.raises(SkipRecord, match="malformed timestamp in updated_at"):
        timestamp({"updated_at": value}, "updated_at", "c1")
