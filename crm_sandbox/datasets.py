"""Deterministic, lazy CRM datasets: records are computed from their slot, never stored.

A stream (contacts or leads) has ``size`` valid records in slots ``0..size-1`` and ``malformed`` extra
records in slots ``-malformed..-1``. A slot's base timestamp is ``ANCHOR + slot minutes``, so a
modified-since filter is a slot range and a page is O(page size) however large the dataset is. Touched
and deleted records live in a small overlay with newer timestamps.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar, overload

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)
MALFORMED_VARIANTS = 3
"""Malformed slot -1 lacks its id, -2 has a timestamp "not-a-date", -3 has its id as an object; repeat."""

Order = Literal["modified", "id"]
T = TypeVar("T")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FEMALE = _words(
    "Amelia Isla Ava Mia Ivy Lily Freya Florence Grace Evie Sophie Poppy Emily Rosie Ella Chloe Siobhan "
    "Aoife Priya Niamh Zara Megan Catrin"
)
_MALE = _words(
    "Oliver George Harry Noah Jack Leo Arthur Muhammad Oscar Charlie Thomas James William Alfie Henry "
    "Joshua Rhys Ravi Callum Dylan Ewan"
)
_LAST = _words(
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson "
    "Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin "
    "Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen O'Brien Khan Singh Ahmed "
    "McDonald Fitzgerald-Hughes Llewellyn MacLeod"
)
_TITLES = {"f": ("Mrs", "Ms", "Miss", "Ms", "Dr", "Mx"), "m": ("Mr", "Mr", "Mr", "Dr", "Mx")}
_DOMAINS = ("gmail.com", "outlook.com", "hotmail.co.uk", "yahoo.co.uk", "btinternet.com", "icloud.com", "sky.com")
_MOBILE = ("07700 900{n:03d}", "+44 7700 900{n:03d}", "07700900{n:03d}", "+447700900{n:03d}", "(07700) 900 {n:03d}")
_LANDLINE = (
    "020 7946 0{n:03d}",
    "+44 20 7946 0{n:03d}",
    "0161 496 0{n:03d}",
    "+44 161 496 0{n:03d}",
    "0113 496 0{n:03d}",
    "(0121) 496 0{n:03d}",
)
_UNPARSEABLE = ("ext 12", "n/a", "0770 09", "call after 6pm")
_SOURCES = ("Rightmove", "Zoopla", "OnTheMarket", "Website", "Walk-in", "Telephone", "Referral")
KINDS = ("sales", "lettings", "valuation", "enquiry")
STATUSES = ("new", "contacted", "viewing", "offer", "closed")
"""Neutral lead statuses; each simulator maps them to its CRM's own words."""


@dataclass(frozen=True, slots=True)
class Person:
    """A CRM-neutral contact; simulators render it in their own field names."""

    title: str
    first_name: str
    last_name: str
    email: str | None
    mobile: str | None
    home: str | None
    work: str | None
    consent: str  # granted | denied | unknown
    branch: int


@dataclass(frozen=True, slots=True)
class Enquiry:
    """A CRM-neutral lead; ``contact_slot`` links it to a contact (None when there are no contacts)."""

    kind: str
    status: str
    source: str
    rating: str
    contact_slot: int | None
    person: Person
    price_min: int
    price_max: int
    rent_min: int
    rent_max: int
    beds_min: int
    beds_max: int
    branch: int


@dataclass(frozen=True, slots=True)
class Mutation:
    """A touched or deleted record: its new timestamp, how often it changed, and whether it is gone."""

    at: datetime
    version: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class Item:
    """One record's identity and history, before a simulator renders it."""

    slot: int
    version: int
    created: datetime
    modified: datetime
    deleted_at: datetime | None
    malformed: int | None  # the corruption variant of an extra malformed record


def base_time(slot: int) -> datetime:
    """A slot's untouched modified time: a pure function, so filters become slot ranges."""
    return ANCHOR + slot * STEP


def first_slot_since(since: datetime) -> int:
    """The smallest slot whose base time is at or after ``since``."""
    slot = (since - ANCHOR) // STEP
    return slot if base_time(slot) >= since else slot + 1


class _Draws:
    """Deterministic draws for one record from one 64-byte hash: ~20x cheaper than seeding a Random,
    which is what keeps a page O(page size) *and* fast. 32 draws of 16 bits, then it wraps."""

    __slots__ = ("_bytes", "_at")

    def __init__(self, seed: str, tag: str, slot: int) -> None:
        self._bytes = hashlib.blake2b(f"{seed}:{tag}:{slot}".encode(), digest_size=64).digest()
        self._at = 0

    def _draw(self) -> int:
        at = self._at % 64
        self._at = at + 2
        return self._bytes[at] << 8 | self._bytes[at + 1]

    def random(self) -> float:
        return self._draw() / 65536

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + step * (self._draw() % ((stop - start + step - 1) // step))

    def choice(self, options: Sequence[T]) -> T:
        return options[self._draw() % len(options)]

    def weighted(self, options: Sequence[T], weights: Sequence[int]) -> T:
        roll = self._draw() % sum(weights)
        for option, weight in zip(options, weights, strict=True):
            if roll < weight:
                return option
            roll -= weight
        raise AssertionError("unreachable")


def _phone(rng: _Draws, formats: tuple[str, ...], present: float) -> str | None:
    if rng.random() >= present:
        return None
    if rng.random() < 0.04:
        return rng.choice(_UNPARSEABLE)
    return rng.choice(formats).format(n=rng.randrange(1000))


def make_person(seed: str, slot: int, version: int = 0) -> Person:
    """The contact in ``slot``; a touch (version > 0) gives it a new mobile number."""
    rng = _Draws(seed, "person", slot)
    sex = "f" if rng.random() < 0.5 else "m"
    first, last = rng.choice(_FEMALE if sex == "f" else _MALE), rng.choice(_LAST)
    local = "".join(ch for ch in last.lower() if ch.isalpha())
    style = rng.randrange(3)
    local = (
        f"{first.lower()}.{local}"
        if style == 0
        else f"{first[0].lower()}{local}"
        if style == 1
        else (f"{first.lower()}{local}{rng.randrange(10, 99)}")
    )
    address = f"{local}@{rng.choice(_DOMAINS)}"
    shout = rng.random()
    if shout < 0.06:
        address = address.upper()
    elif shout < 0.12:
        address = f"{first}.{last.replace(' ', '')}@{address.split('@')[1].capitalize()}"
    email = None if rng.random() < 0.05 else address
    mobile = _phone(rng, _MOBILE, 0.85)
    if version:
        digits = int(mobile[-3:]) if mobile and mobile[-3:].isdigit() else 0
        mobile = f"+44 7700 900{(digits + version) % 1000:03d}"
    roll = rng.random()
    consent = "granted" if roll < 0.6 else "denied" if roll < 0.8 else "unknown"
    return Person(
        title=rng.choice(_TITLES[sex]),
        first_name=first,
        last_name=last,
        email=email,
        mobile=mobile,
        home=_phone(rng, _LANDLINE, 0.4),
        work=_phone(rng, _LANDLINE, 0.25),
        consent=consent,
        branch=rng.randrange(1, 4),
    )


def make_enquiry(seed: str, slot: int, version: int, contacts: int) -> Enquiry:
    """The lead in ``slot``, linked to one of ``contacts`` contacts; a touch moves its status on
    (and changes the applicant's mobile, for CRMs whose lead records carry the person)."""
    rng = _Draws(seed, "enquiry", slot)
    kind = rng.weighted(KINDS, (45, 35, 12, 8))
    status = STATUSES[(rng.randrange(len(STATUSES)) + version) % len(STATUSES)]
    contact_slot = (slot * 7919 + 13) % contacts if contacts > 0 else None
    price_min = rng.randrange(150, 800, 25) * 1000
    rent_min = rng.randrange(800, 3000, 50)
    beds_min = rng.randrange(1, 5)
    return Enquiry(
        kind=kind,
        status=status,
        source=rng.choice(_SOURCES),
        rating=rng.choice(("hot", "warm", "cold")),
        contact_slot=contact_slot,
        person=make_person(seed, contact_slot if contact_slot is not None else -slot - 1_000_000, version),
        price_min=price_min,
        price_max=price_min + rng.randrange(50, 300, 25) * 1000,
        rent_min=rent_min,
        rent_max=rent_min + rng.randrange(200, 1000, 50),
        beds_min=beds_min,
        beds_max=beds_min + rng.randrange(3),
        branch=rng.randrange(1, 4),
    )


class SlotView(Sequence[int]):
    """One query's records as a lazy sequence of slots: ``head + (range(lo, hi) - skip) + tail``.

    ``skip`` and the extras are the overlay's handful of slots, so indexing costs O(log overlay).
    """

    def __init__(self, head: list[int], lo: int, hi: int, skip: list[int], tail: list[int]) -> None:
        self._head, self._lo, self._hi, self._skip, self._tail = head, lo, max(lo, hi), skip, tail
        self._mid = self._hi - lo - len(skip)

    def __len__(self) -> int:
        return len(self._head) + self._mid + len(self._tail)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            start, stop, _ = index.indices(len(self))
            return self.window(start, stop)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.window(index, index + 1)[0]

    def window(self, start: int, stop: int) -> list[int]:
        """Slots at positions ``start..stop-1``, in O(stop - start + log overlay)."""
        stop = min(stop, len(self))
        out = self._head[start:stop]
        mid_start, mid_stop = max(0, start - len(self._head)), min(self._mid, stop - len(self._head))
        if mid_start < mid_stop:
            out.extend(self._mid_slots(mid_start, mid_stop - mid_start))
        tail_start = len(self._head) + self._mid
        out.extend(self._tail[max(0, start - tail_start) : max(0, stop - tail_start)])
        return out

    def _mid_slots(self, position: int, count: int) -> Iterator[int]:
        slot = self._lo + position
        while (moved := self._lo + position + bisect.bisect_right(self._skip, slot)) != slot:
            slot = moved
        skip_at = bisect.bisect_left(self._skip, slot)
        while count:
            if skip_at < len(self._skip) and self._skip[skip_at] == slot:
                skip_at += 1
            else:
                yield slot
                count -= 1
            slot += 1


class StreamData:
    """One stream of one CRM: its size, extra malformed records and the overlay of mutations."""

    def __init__(self, size: int, malformed: int = 0) -> None:
        self.size, self.malformed = size, malformed
        self.overlay: dict[int, Mutation] = {}
        self._by_time: list[tuple[datetime, int]] = []

    def bounds(self, part: int | None) -> tuple[int, int]:
        """Slot range of a whole stream (part None) or of one endpoint of a stream split in two.

        Part 0 gets the malformed slots and valid slots ``0..ceil(size/2)-1``; part 1 the rest.
        """
        half = (self.size + 1) // 2
        return {None: (-self.malformed, self.size), 0: (-self.malformed, half), 1: (half, self.size)}[part]

    def item(self, slot: int) -> Item:
        """The record in ``slot`` with its mutations applied."""
        mutation = self.overlay.get(slot)
        base = base_time(slot)
        return Item(
            slot=slot,
            version=mutation.version if mutation else 0,
            created=base - timedelta(hours=(slot * 7919) % 2000),
            modified=mutation.at if mutation else base,
            deleted_at=mutation.at if mutation and mutation.deleted else None,
            malformed=(-slot - 1) % MALFORMED_VARIANTS if slot < 0 else None,
        )

    def modified(self, slot: int) -> datetime:
        """The slot's current modified time (cheaper than ``item``; used for keyset seeks)."""
        mutation = self.overlay.get(slot)
        return mutation.at if mutation else base_time(slot)

    def view(self, part: int | None, *, since: datetime | None, order: Order, hide_deleted: bool) -> SlotView:
        """The records a query sees: modified >= ``since``, in modified or slot (id) order."""
        lo, hi = self.bounds(part)
        start = lo if since is None else min(hi, max(lo, first_slot_since(since)))
        mine = [(at, s) for at, s in self._by_time if lo <= s < hi]

        def shown(slot: int) -> bool:
            mutation = self.overlay[slot]
            return not (hide_deleted and mutation.deleted) and (since is None or mutation.at >= since)

        if order == "modified":
            skip = sorted(s for _, s in mine if s >= start)
            return SlotView([], start, hi, skip, [s for _, s in mine if shown(s)])
        head = sorted(s for _, s in mine if s < start and shown(s))
        skip = sorted(s for _, s in mine if s >= start and not shown(s))
        return SlotView(head, start, hi, skip, [])

    def mutate(self, count: int, *, delete: bool, rng: random.Random, now: datetime) -> list[int]:
        """Touch (or delete) ``count`` live records, chosen by ``rng``; returns their slots in order."""
        dead = {s for s, m in self.overlay.items() if m.deleted}
        if count >= self.size - len(dead):
            chosen = [s for s in range(self.size) if s not in dead]
        else:
            picked: set[int] = set()
            while len(picked) < count:
                slot = rng.randrange(self.size)
                if slot not in dead:
                    picked.add(slot)
            chosen = sorted(picked)
        # Newer than every base record, so a modified-since filter after the base range finds only these.
        at = max(now.replace(microsecond=0), base_time(self.size))
        for slot in chosen:
            previous = self.overlay.get(slot)
            self.overlay[slot] = Mutation(at=at, version=(previous.version if previous else 0) + 1, deleted=delete)
        self._by_time = sorted((m.at, s) for s, m in self.overlay.items())
        return chosen
