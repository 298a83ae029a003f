"""The canonical JSON is the standard library's, byte for byte, so a stored content hash never changes
meaning (an upgrade rewrites nothing); orjson only makes it faster where its bytes are the same."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from nurturehub_pipelines.sync import canonical


def stdlib(raw: Any) -> bytes:
    return json.dumps(raw, sort_keys=True, default=str, separators=(",", ":")).encode()


EDGES: list[Any] = [
    {"b": 1, "a": [True, None, -5, 2.5, 100.0, 1e16, 1e22, -0.0]},
    {"first_name": "Zoë", "last_name": "Ó Briain", "city": "Malmö"},  # non-ASCII: json escapes it
    {"note": 'tab\there, new\nline, quote " and back\\slash, del \x7f, bell \x07'},
    {"tiny": 1e-05, "tinier": 3.2e-07, "small": 0.0001, "fraction": 0.00012},
    {"big": 2**70, "negative_big": -(2**64)},
    {1: "int keys", 3: "json writes them as strings"},
    {"when": datetime(2026, 12, 2, 9, 30, tzinfo=UTC)},  # not JSON: default=str decides
    {"text": "e-mail 1e-5 0.00001 as text"},
    {"emoji": "🏠", "nested": {"z": {"y": [{"x": "é"}]}}},
    [],
    "plain",
]


@pytest.mark.parametrize("raw", EDGES, ids=range(len(EDGES)))
def test_edge_cases_match_the_standard_library(raw: Any) -> None:
    assert canonical.canonical_json(raw) == stdlib(raw)


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(2**40), 2**40)
    if kind == 3:
        return rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-9, 18)
    if kind in (4, 5):
        alphabet = 'abcXYZ 019-_.@+e\\"\t\n\x7féøñ€😀'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
    if kind in (6, 7):
        return {
            "".join(rng.choice("abcdeé_") for _ in range(rng.randrange(1, 6))): _value(rng, depth + 1) for _ in range(4)
        }
    return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_random_records_match_the_standard_library() -> None:
    rng = random.Random(12)
    for _ in range(5_000):
        raw = _value(rng)
        assert canonical.canonical_json(raw) == stdlib(raw), raw


def test_a_plain_record_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASCII records (most) never reach json.dumps: the speed is real, not a fallback every time."""
    record = {"id": "con_1", "first_name": "Ada", "emails": [{"value": "ada@example.co.uk", "primary": True}]}
    expected = stdlib(record)

    def refuse(*_: Any, **__: Any) -> str:
        raise AssertionError("json.dumps called")

    monkeypatch.setattr(canonical.json, "dumps", refuse)
    assert canonical.canonical_json(record) == expected
