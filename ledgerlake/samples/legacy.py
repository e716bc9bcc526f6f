"""Deterministic generator of contract-conformant legacy batch files.

Writes ``core_banking`` (fixed-width, ISO-8859-1) and ``cards`` (pipe-delimited,
UTF-8) files in the formats of ``docs/formats.md``, optionally with
record-level and file-level defects injected on purpose, and returns a
:class:`Manifest` stating what a correct loader must make of them when they
are loaded into an empty lake in business-date order.

Everything is derived from ``seed``: the same arguments always give the same
bytes. Each file has its own random stream, and state carried from file to
file (account balances, the records that later files re-send) only depends on
earlier files, so a longer run starts with the same files as a shorter one.

Pure standard library; used by the demo, the tests and the benchmark.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "CURRENCIES",
    "FILE_ERRORS",
    "RECORD_ERRORS",
    "SOURCES",
    "FileOutcome",
    "Manifest",
    "add_arguments",
    "generate",
    "run",
]

SOURCES = ("core_banking", "cards")

RECORD_ERRORS = {
    "core_banking": (
        "BAD_TXN_ID",
        "BAD_ACCOUNT",
        "BAD_DATE",
        "BAD_TIME",
        "BAD_CURRENCY",
        "UNKNOWN_TXN_CODE",
        "BAD_REVERSAL",
        "DUPLICATE_TXN_ID",
    ),
    "cards": (
        "BAD_TXN_ID",
        "BAD_ACCOUNT",
        "BAD_DATE",
        "BAD_TIME",
        "BAD_CURRENCY",
        "BAD_MCC",
        "DUPLICATE_TXN_ID",
    ),
}

FILE_ERRORS = {
    "core_banking": (
        "EMPTY_FILE",
        "MALFORMED_RECORD",
        "MISSING_HEADER",
        "MISSING_TRAILER",
        "BAD_HEADER",
        "BAD_AMOUNT_FIELD",
        "CONTROL_COUNT_MISMATCH",
        "CONTROL_TOTAL_MISMATCH",
    ),
    "cards": (
        "BAD_FILE_NAME",
        "EMPTY_FILE",
        "BAD_COLUMN_HEADER",
        "MISSING_TRAILER",
        "MALFORMED_RECORD",
        "BAD_AMOUNT_FIELD",
        "CONTROL_COUNT_MISMATCH",
        "CONTROL_TOTAL_MISMATCH",
    ),
}

CURRENCIES = (
    "USD", "EUR", "GBP", "INR", "JPY", "CHF", "AUD", "CAD", "SGD",
    "HKD", "CNY", "AED", "SAR", "ZAR", "SEK", "NOK", "DKK", "NZD",
)  # fmt: skip

DEFAULT_START = date(2024, 1, 1)
DUP = "DUPLICATE_TXN_ID"
CARDS_COLUMN_HEADER = (
    "CARD_TXN_REF|ACCOUNT_NO|TXN_DATE|TXN_TIME|AMOUNT|CURRENCY|MERCHANT_NAME|MCC|AUTH_CODE"
)

# Share of records posted on the day before the business date.
_PREV_DAY_SHARE = 0.05
# Records per file from which every record-level reason appears in each file.
_FULL_ROUND_MIN = 20
# Re-sendable records remembered from each loaded file.
_POOL_PER_FILE = 4
# First FILE-SEQ-NO (core_banking) used for file-error files.
_ERROR_FILE_SEQ = 90
_MAX_RECORDS_PER_FILE = 9_999_999
_MIN_DATE = date(1900, 1, 2)
_MAX_DATE = date(2099, 12, 30)

# Duplicate injection variants (see the README's common rules).
_DUP_COPY = "copy"  # identical copy of an earlier record of the same file
_DUP_CONFLICT = "conflict"  # two records of the file, same id, different fields
_DUP_RESEND = "resend"  # identical re-send of a record loaded from an earlier file
_DUP_REUSE = "reuse"  # different fields under an id loaded from an earlier file
_POOL_KINDS = (_DUP_RESEND, _DUP_REUSE)

_POS_PUNCH = "{ABCDEFGHI"
_NEG_PUNCH = "}JKLMNOPQR"

_CORE_CODES = ("DEP", "WDL", "TRF", "FEE", "INT", "POS", "ATM", "CHQ", "REV")
# (code, weight in %, lowest amount in steps, span in steps, step in cents, sign)
# sign: 1 credit, -1 debit, 0 either.
_CORE_CODE_SPECS = (
    ("DEP", 12, 1000, 499_000, 1, 1),
    ("WDL", 8, 1000, 199_000, 1, -1),
    ("TRF", 16, 100, 999_900, 1, 0),
    ("FEE", 8, 50, 4_950, 1, -1),
    ("INT", 6, 1, 19_999, 1, 1),
    ("POS", 28, 100, 49_900, 1, -1),
    ("ATM", 12, 2, 48, 1000, -1),
    ("CHQ", 6, 1000, 299_000, 1, 0),
    ("REV", 4, 0, 0, 1, 0),
)
_REV = _CORE_CODES.index("REV")
_POS = _CORE_CODES.index("POS")
_CORE_CHANNELS = {
    "DEP": ("BRN", "BRN", "BRN", "BRN", "ATM", "ATM", "MOB", "WEB"),
    "WDL": ("BRN", "BRN", "BRN", "BRN", "BRN", "BRN", "BAT", "MOB"),
    "TRF": ("WEB", "WEB", "WEB", "MOB", "MOB", "MOB", "BRN", "BAT"),
    "FEE": ("BAT",) * 8,
    "INT": ("BAT",) * 8,
    "POS": ("POS",) * 8,
    "ATM": ("ATM",) * 8,
    "CHQ": ("BRN", "BRN", "BRN", "BRN", "BRN", "BRN", "BAT", "BAT"),
    "REV": ("BAT", "BAT", "BAT", "BAT", "BRN", "BRN", "WEB", "MOB"),
}
_CURRENCY_WEIGHTS = {"EUR": 40, "USD": 20, "GBP": 10, "CHF": 6, "INR": 4, "JPY": 4}

_CITIES = (
    "Zürich", "München", "Köln", "Genève", "Málaga", "São Paulo", "Düsseldorf",
    "Malmö", "Kraków", "Reykjavík", "London", "Paris", "Mumbai", "Tokyo",
)  # fmt: skip
_PEOPLE = (
    "Jürgen Weiß", "Renée Dubois", "José Muñoz", "Søren Ødegård", "Zoë Brontë",
    "Anaïs Noël", "Ana Núñez", "John Smith", "Priya Sharma", "Großmann GmbH",
)  # fmt: skip
_COMPANIES = (
    "ACME Corp", "Nestlé SA", "Müller GmbH", "Société Lyonnaise", "Señorío SL",
    "Björn & Co", "Straßenbau AG", "Globex Ltd",
)  # fmt: skip
_SHOPS = (
    "Café Central", "Bäckerei Müller", "Crème de la Crème", "Señor Taco",
    "Björk Design", "Librería Ñandú", "Pâtisserie Ladurée", "Hôtel du Lac",
    "Aldi Süd", "Migros", "Tesco Stores", "Straßencafé", "Fnac", "Boots",
)  # fmt: skip
_CORE_DESC_TEMPLATES = {
    "DEP": ("CASH DEPOSIT {city}", "SALARY {company}", "DEPOSIT {person}"),
    "WDL": ("CASH WITHDRAWAL {city}", "COUNTER WITHDRAWAL {city}"),
    "TRF": ("TRANSFER TO {person}", "TRANSFER FROM {person}", "SEPA TRF {company}"),
    "FEE": ("ACCOUNT FEE", "CARD FEE", "OVERDRAFT FEE", "FX FEE", "WIRE FEE {city}"),
    "INT": ("INTEREST CREDIT", "INTEREST Q{q}", "BONUS INTEREST"),
    "POS": ("POS {shop} {city}", "POS {shop}"),
    "ATM": ("ATM {city} #{n4}",),
    "CHQ": ("CHEQUE {n6}", "CHQ {person}"),
    "REV": ("REVERSAL {shop}", "REVERSAL OF TRANSFER", "CORRECTION {company}"),
}

# (merchant name, MCC); quoting is applied when rendering.
_CARD_MERCHANTS = (
    ("AMAZON MKTPLACE", "5942"),
    ("NETFLIX.COM", "4899"),
    ("UBER TRIP", "4121"),
    ("SHELL 0042", "5541"),
    ("Café de Flore", "5812"),
    ("Müller & Söhne", "5411"),
    ("株式会社テスト", "5999"),
    ("PIPE|SHOP LTD", "5999"),
    ('Joe\'s "Best" Pizza', "5814"),
    ("Bäckerei Schäfer", "5462"),
    ("IKEA Malmö", "5712"),
    ("Zürich Hbf Kiosk", "5994"),
    ("大阪ラーメン", "5812"),
    ("TESCO STORES 3021", "5411"),
    ("SNCF Voyageurs", "4112"),
    ("APPLE.COM/BILL", "5732"),
    ("STARBUCKS #1043", "5814"),
    ("Hôtel Le Méridien", "7011"),
    ("El Corte Inglés", "5311"),
    ('"QUOTED" | BAR & GRILL', "5813"),
    ("LIDL KÖLN", "5411"),
    ("BOOKING.COM", "4722"),
    ("DB FERNVERKEHR", "4112"),
    ("SPOTIFY AB", "5815"),
)
_CARDS_FX = ("USD", "GBP", "EUR", "CHF", "JPY")

_CORE_BAD_VALUES = {
    "BAD_TIME": ("250000", "126000", "123075"),
    "BAD_CURRENCY": ("eur", "BTC", "XYZ"),
    "UNKNOWN_TXN_CODE": ("XYZ ", "PAY ", "ADJ "),
}
_CARDS_BAD_VALUES = {
    "BAD_TIME": ("12:60:00", "25:00:00", "12:30:75"),
    "BAD_CURRENCY": ("BTC", "eur", "XYZ"),
    "BAD_MCC": ("54A1", "541", "54111"),
}


# --------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------


@dataclass
class FileOutcome:
    """What loading one file into an empty lake (files in business-date order) gives."""

    name: str
    business_date: date | None
    records_in: int
    rejected: str | None = None
    quarantined: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    new_rows: int = 0

    @property
    def quarantined_total(self) -> int:
        """Number of quarantined records of the file."""
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (dates as ISO strings)."""
        return {
            "name": self.name,
            "business_date": self.business_date.isoformat() if self.business_date else None,
            "records_in": self.records_in,
            "rejected": self.rejected,
            "quarantined": dict(self.quarantined),
            "accepted": self.accepted,
            "new_rows": self.new_rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileOutcome:
        """Inverse of :meth:`to_dict`."""
        bd = data.get("business_date")
        return cls(
            name=data["name"],
            business_date=date.fromisoformat(bd) if bd else None,
            records_in=int(data["records_in"]),
            rejected=data.get("rejected"),
            quarantined={k: int(v) for k, v in (data.get("quarantined") or {}).items()},
            accepted=int(data.get("accepted", 0)),
            new_rows=int(data.get("new_rows", 0)),
        )


@dataclass
class Manifest:
    """Expected outcome of loading every generated file of one source, in order."""

    source: str
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def total_records(self) -> int:
        """Detail records written, rejected files included."""
        return sum(f.records_in for f in self.files)

    @property
    def total_accepted(self) -> int:
        """Records accepted (identical re-sends included)."""
        return sum(f.accepted for f in self.files)

    @property
    def total_quarantined(self) -> int:
        """Records quarantined, over all loaded files."""
        return sum(f.quarantined_total for f in self.files)

    @property
    def silver_rows(self) -> int:
        """Rows ``silver.transactions`` holds for this source afterwards."""
        return sum(f.new_rows for f in self.files)

    @property
    def rejected_files(self) -> list[str]:
        """Names of the files rejected whole."""
        return [f.name for f in self.files if f.rejected]

    @property
    def loaded_files(self) -> list[str]:
        """Names of the files loaded (possibly with quarantined records)."""
        return [f.name for f in self.files if not f.rejected]

    def quarantined_by_reason(self) -> dict[str, int]:
        """Quarantined records per reason, over all files."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.quarantined)
        order = RECORD_ERRORS.get(self.source, ())
        return {r: total[r] for r in sorted(total, key=lambda r: (_index(order, r), r))}

    def rejected_by_reason(self) -> dict[str, int]:
        """Rejected files per reason."""
        return dict(Counter(f.rejected for f in self.files if f.rejected))

    def by_name(self) -> dict[str, FileOutcome]:
        """Outcomes keyed by file name."""
        return {f.name: f for f in self.files}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with summary totals."""
        return {
            "source": self.source,
            "summary": {
                "files": len(self.files),
                "loaded_files": len(self.loaded_files),
                "rejected_files": self.rejected_files,
                "total_records": self.total_records,
                "total_accepted": self.total_accepted,
                "total_quarantined": self.total_quarantined,
                "silver_rows": self.silver_rows,
                "quarantined_by_reason": self.quarantined_by_reason(),
            },
            "files": [f.to_dict() for f in self.files],
        }

    def to_json(self) -> str:
        """Stable, indented JSON."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Read back what :meth:`to_json` wrote (the summary is recomputed)."""
        data = json.loads(text)
        return cls(source=data["source"], files=[FileOutcome.from_dict(f) for f in data["files"]])


def _index(seq: Sequence[str], item: str) -> int:
    return seq.index(item) if item in seq else len(seq)


# --------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------


@cache
def _clock(sep: str) -> tuple[str, ...]:
    """Every second of the day as HHMMSS (joined by ``sep``)."""
    return tuple(
        f"{h:02d}{sep}{m:02d}{sep}{s:02d}" for h in range(24) for m in range(60) for s in range(60)
    )


@lru_cache(maxsize=1)
def _alnum3() -> tuple[str, ...]:
    """Every 3-character string of A-Z0-9."""
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return tuple(a + b + c for a in chars for b in chars for c in chars)


def _zoned(cents: int, plain: bool = False) -> str:
    """PIC S9(13)V99 zoned decimal with trailing overpunch (15 characters)."""
    if cents < 0:
        m = -cents
        return f"{m // 10:014d}{_NEG_PUNCH[m % 10]}"
    if plain:
        return f"{cents:015d}"
    return f"{cents // 10:014d}{_POS_PUNCH[cents % 10]}"


def _decimal2(cents: int) -> str:
    """Cents as ``-?digits.dd``."""
    sign = "-" if cents < 0 else ""
    m = -cents if cents < 0 else cents
    return f"{sign}{m // 100}.{m % 100:02d}"


def _csv_field(text: str) -> str:
    """Quote a field when it holds the delimiter or a quote (RFC 4180 with ``|``)."""
    if "|" in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _put(line: str, start: int, end: int, value: str) -> str:
    """Replace columns ``[start, end)`` of a fixed-width line."""
    if len(value) != end - start:
        raise ValueError(f"value {value!r} does not fit columns {start}-{end}")
    return line[:start] + value + line[end:]


# Fixed-width columns of a core_banking detail record (0-based, end exclusive).
_C_TID = (1, 21)
_C_ACCT = (21, 33)
_C_PDATE = (33, 41)
_C_PTIME = (41, 47)
_C_VDATE = (47, 55)
_C_CODE = (55, 59)
_C_AMT = (59, 74)
_C_CUR = (74, 77)
_C_REV = (135, 155)
_BLANK20 = " " * 20


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------


@dataclass
class _Batch:
    """Detail records of one file, in file order."""

    lines: list[str]
    tids: list[str]
    cents: list[int]
    prefail: dict[int, str] = field(default_factory=dict)  # position -> reason
    bad: set[int] = field(default_factory=set)  # positions holding an injected defect


class _Writer:
    """State and logic shared by both sources."""

    source = ""
    id_letters = ""

    def __init__(
        self,
        out: Path,
        *,
        start: date,
        seed: int,
        accounts: int,
        record_errors: bool,
        error_rate: float,
    ) -> None:
        self.out = out
        self.start = start
        self.seed = seed
        self.record_errors = record_errors
        self.error_rate = error_rate
        self.prefix = f"{seed % 10000:04d}"
        self._init_accounts(accounts)
        # txn_id -> (raw line, cents) of loaded records that later files may re-send.
        self.silver: dict[str, tuple[str, int]] = {}
        self.pool: list[str] = []
        self.file_no = 0

    # -- shared pools -------------------------------------------------------

    def _init_accounts(self, n: int) -> None:
        """Fixed account pool; depends on the seed only, so sources share accounts."""
        rng = random.Random(f"ledgerlake:accounts:{self.seed}")
        seen: set[str] = set()
        accts: list[str] = []
        curs: list[str] = []
        bals: list[int] = []
        branches: list[str] = []
        cur_names = list(CURRENCIES)
        cur_weights = [_CURRENCY_WEIGHTS.get(c, 1) for c in cur_names]
        while len(accts) < n:
            hi = 10**10 if len(accts) % 3 == 0 else 10**12  # a third with leading zeros
            acct = f"{rng.randrange(10**6, hi):012d}"
            if acct in seen:
                continue
            seen.add(acct)
            accts.append(acct)
            curs.append(rng.choices(cur_names, cur_weights)[0])
            bals.append(rng.randrange(50_000, 5_000_000))
            branches.append(f"BR{rng.randrange(10000):04d}")
        self.accts = accts
        self.acct_curs = curs
        self.balances = bals
        self.acct_branch = branches

    def rng_for(self, *parts: object) -> random.Random:
        """Independent, stable random stream for one file."""
        return random.Random(":".join([str(self.seed), self.source, *map(str, parts)]))

    # -- record-level injection plan ---------------------------------------

    def _round(self) -> list[tuple[str, int | str]]:
        raise NotImplementedError

    def _plan(self, n: int) -> list[tuple[str, int | str]]:
        """Defects to inject into a file of ``n`` records: (reason, variant) pairs."""
        if not self.record_errors or n < 2:
            return []
        cycle = self._round()
        size = len(cycle)

        def cost(variant: int | str) -> int:
            return 2 if variant == _DUP_CONFLICT else 1

        target = min(int(n * self.error_rate + 0.5), n // 2)
        if n >= _FULL_ROUND_MIN:
            usable = [v for r, v in cycle if not (r == DUP and v in _POOL_KINDS and not self.pool)]
            target = max(target, sum(cost(v) for v in usable))
        plan: list[tuple[str, int | str]] = []
        used = pool_picks = i = 0
        while used < target:
            reason, variant = cycle[i % size]
            rounds = i // size
            i += 1
            if used + cost(variant) > n - 1:
                break
            if reason == DUP and variant in _POOL_KINDS:
                if pool_picks >= len(self.pool):
                    continue
                pool_picks += 1
            if reason != DUP:
                variant = int(variant) + rounds + self.file_no  # rotate through variants
            plan.append((reason, variant))
            used += cost(variant)
        return plan

    def _positions(
        self, rng: random.Random, n: int, plan: list[tuple[str, int | str]]
    ) -> list[tuple[str, int | str, list[int]]]:
        """Give every planned defect its record position(s); position 0 stays clean."""
        need = sum(2 if v == _DUP_CONFLICT else 1 for _, v in plan)
        slots = rng.sample(range(1, n), need)
        out: list[tuple[str, int | str, list[int]]] = []
        k = 0
        for reason, variant in plan:
            take = 2 if variant == _DUP_CONFLICT else 1
            out.append((reason, variant, sorted(slots[k : k + take])))
            k += take
        return out

    @staticmethod
    def _clean_before(rng: random.Random, p: int, bad: set[int]) -> int:
        """A random defect-free position before ``p`` (position 0 always is)."""
        for _ in range(16):
            o = int(rng.random() * p)
            if o not in bad:
                return o
        return next(o for o in range(p - 1, -1, -1) if o not in bad)

    # -- per-source hooks ---------------------------------------------------

    def _records(
        self, rng: random.Random, n: int, day: int, fi: int, bad: set[int], balances: list[int]
    ) -> _Batch:
        raise NotImplementedError

    def _mutate(self, rng: random.Random, line: str, reason: str, variant: int, day: int) -> str:
        raise NotImplementedError

    def _conflict(self, rng: random.Random, line: str, cents: int) -> tuple[str, int]:
        """Same txn id, other field values (still valid)."""
        raise NotImplementedError

    def _bad_reversal(self, rng: random.Random, line: str, variant: int, ref: str) -> str:
        raise NotImplementedError

    # -- one loaded file ----------------------------------------------------

    def detail_batch(self, rng: random.Random, n: int, day: int, fi: int) -> _Batch:
        """Records of a normal file with the planned defects applied."""
        placed = self._positions(rng, n, self._plan(n)) if n > 1 else []
        bad = {p for _, _, ps in placed for p in ps}
        batch = self._records(rng, n, day, fi, bad, self.balances)
        lines, tids, cents = batch.lines, batch.tids, batch.cents
        used_pool: set[str] = set()
        for reason, variant, ps in placed:
            p = ps[0]
            if reason != DUP:
                if reason == "BAD_REVERSAL":
                    ref = tids[self._clean_before(rng, p, bad)]
                    lines[p] = self._bad_reversal(rng, lines[p], int(variant), ref)
                else:
                    lines[p] = self._mutate(rng, lines[p], reason, int(variant), day)
                    if reason == "BAD_TXN_ID":
                        tids[p] = self._tid_of(lines[p])
                batch.prefail[p] = reason
            elif variant == _DUP_COPY:
                o = self._clean_before(rng, p, bad)
                lines[p], tids[p], cents[p] = lines[o], tids[o], cents[o]
            elif variant == _DUP_CONFLICT:
                q = ps[1]
                lines[q], cents[q] = self._conflict(rng, lines[p], cents[p])
                tids[q] = tids[p]
            else:
                tid = self.pool[int(rng.random() * len(self.pool))]
                while tid in used_pool:
                    tid = self.pool[int(rng.random() * len(self.pool))]
                used_pool.add(tid)
                raw, c = self.silver[tid]
                if variant == _DUP_REUSE:
                    raw, c = self._conflict(rng, raw, c)
                lines[p], tids[p], cents[p] = raw, tid, c
        batch.bad = bad
        return batch

    def resolve(self, batch: _Batch) -> tuple[dict[str, int], int, int]:
        """Apply the duplicate rules to a loaded file: (quarantined, accepted, new_rows).

        Records that failed an earlier rule are given; duplicates are worked
        out from the txn ids and raw records actually written, within the file
        and against the records kept from earlier files.
        """
        lines, tids, prefail = batch.lines, batch.tids, batch.prefail
        quarantined: Counter[str] = Counter(prefail.values())
        count = Counter(tids)
        for p in prefail:
            t = tids[p]
            if count[t] == 1:
                del count[t]
            else:
                count[t] -= 1
        raws: dict[str, list[str]] = {}
        if len(count) < len(tids) - len(prefail):
            multi = {t for t, k in count.items() if k > 1}
            for i, t in enumerate(tids):
                if t in multi and i not in prefail:
                    raws.setdefault(t, []).append(lines[i])
        dup = 0
        conflicting: set[str] = set()
        for t, group in raws.items():
            if all(r == group[0] for r in group):
                dup += len(group) - 1
            else:
                dup += len(group)
                conflicting.add(t)
        passing = count.keys() - conflicting
        accepted = new_rows = len(passing)
        for t in passing & self.silver.keys():
            raw = raws[t][0] if t in raws else lines[self._find(tids, t, prefail)]
            new_rows -= 1
            if raw != self.silver[t][0]:
                accepted -= 1
                dup += 1
        if dup:
            quarantined[DUP] += dup
        if accepted + sum(quarantined.values()) != len(lines):
            raise AssertionError("record accounting does not add up")
        order = RECORD_ERRORS[self.source]
        q = {r: quarantined[r] for r in sorted(quarantined, key=lambda r: _index(order, r))}
        self._remember(batch, count, passing)
        return q, accepted, new_rows

    @staticmethod
    def _find(tids: list[str], tid: str, skip: dict[int, str]) -> int:
        return next(i for i, t in enumerate(tids) if t == tid and i not in skip)

    def _remember(self, batch: _Batch, count: Counter[str], passing: set[str]) -> None:
        """Keep a few freshly loaded records for later files to re-send."""
        if not self.record_errors:
            return
        n = len(batch.lines)
        rng = random.Random(f"{self.seed}:{self.source}:pool:{self.file_no}")
        added = 0
        for i in rng.sample(range(n), min(n, _POOL_PER_FILE * 2)):
            t = batch.tids[i]
            if (
                i not in batch.bad
                and count.get(t) == 1
                and t in passing
                and t not in self.silver
            ):
                self.silver[t] = (batch.lines[i], batch.cents[i])
                self.pool.append(t)
                added += 1
                if added == _POOL_PER_FILE:
                    break

    def _tid_of(self, line: str) -> str:
        raise NotImplementedError

    def write(self, name: str, data: bytes) -> None:
        """Write one file in a single call."""
        (self.out / name).write_bytes(data)

    def day(self, d: int) -> date:
        """Business date of day index ``d``."""
        return self.start + timedelta(days=d)


class _CoreWriter(_Writer):
    """``core_banking``: fixed-width ISO-8859-1 records."""

    source = "core_banking"

    def __init__(self, out: Path, **kw: Any) -> None:
        super().__init__(out, **kw)
        rng = random.Random(f"{self.seed}:{self.source}:pools")
        self.code_tab = tuple(i for i, spec in enumerate(_CORE_CODE_SPECS) for _ in range(spec[1]))
        self.specs = tuple(
            (code.ljust(4), lo, span, step, sign)
            for code, _w, lo, span, step, sign in _CORE_CODE_SPECS
        )
        self.descs = tuple(self._descriptions(rng, code) for code in _CORE_CODES)
        self.chans = tuple(_CORE_CHANNELS[code] for code in _CORE_CODES)

    @staticmethod
    def _descriptions(rng: random.Random, code: str) -> tuple[str, ...]:
        out = []
        for _ in range(32):
            text = rng.choice(_CORE_DESC_TEMPLATES[code]).format(
                city=rng.choice(_CITIES),
                person=rng.choice(_PEOPLE),
                company=rng.choice(_COMPANIES),
                shop=rng.choice(_SHOPS),
                q=rng.randrange(1, 5),
                n4=f"{rng.randrange(10000):04d}",
                n6=f"{rng.randrange(10**6):06d}",
            )
            text = text[:40].rstrip().ljust(40)
            text.encode("latin-1")
            out.append(text)
        return tuple(out)

    def _round(self) -> list[tuple[str, int | str]]:
        return [
            ("BAD_TXN_ID", 0),
            ("BAD_ACCOUNT", 0),
            ("BAD_DATE", 0),
            ("BAD_TIME", 0),
            ("BAD_CURRENCY", 0),
            ("UNKNOWN_TXN_CODE", 0),
            ("BAD_REVERSAL", 0),
            ("BAD_REVERSAL", 1),
            (DUP, _DUP_COPY),
            (DUP, _DUP_CONFLICT),
            (DUP, _DUP_RESEND),
            (DUP, _DUP_REUSE),
        ]

    def _records(
        self, rng: random.Random, n: int, day: int, fi: int, bad: set[int], balances: list[int]
    ) -> _Batch:
        r = rng.random
        bd = self.day(day)
        ds = tuple((bd + timedelta(days=k)).strftime("%Y%m%d") for k in (-2, -1, 0, 1))
        vdt = (0,) * 16 + (-1, -1, 1, 1)
        keys = sorted(
            [int(r() * 86400) + (0 if r() < _PREV_DAY_SHARE else 86400) for _ in range(n)]
        )
        clock = _clock("")
        accts, curs, branches = self.accts, self.acct_curs, self.acct_branch
        n_acc = len(accts)
        code_tab, descs, chans = self.code_tab, self.descs, self.chans
        specs = self.specs
        neg, pos = _NEG_PUNCH, _POS_PUNCH
        filler = " " * 39
        blank = _BLANK20
        rev_code = "REV "
        base = f"CB{self.prefix}{day:05d}{fi:02d}"
        tids: list[str] = []
        lines: list[str] = []
        cents: list[int] = []
        accs: list[int] = []
        is_rev = bytearray(n)
        for j in range(n):
            key = keys[j]
            if key >= 86400:
                pdi = 2
                sec = key - 86400
            else:
                pdi = 1
                sec = key
            tid = f"{base}{j + 1:07d}"
            ci = code_tab[int(r() * 100)]
            rev = blank
            if ci == _REV:
                k = int(r() * j)
                if j and not is_rev[k] and k not in bad:
                    a = accs[k]
                    c = -cents[k]
                    rev = tids[k]
                    is_rev[j] = 1
                    code = rev_code
                else:
                    ci = _POS
            if rev is blank:
                code, lo, span, step, sign = specs[ci]
                a = int(r() * n_acc)
                c = (lo + int(r() * span)) * step
                if sign < 0 or (sign == 0 and r() < 0.5):
                    c = -c
            b = balances[a] + c
            if j not in bad:
                balances[a] = b
            if c < 0:
                m = -c
                za = f"{m // 10:014d}{neg[m % 10]}"
            elif j & 3:
                za = f"{c // 10:014d}{pos[c % 10]}"
            else:
                za = f"{c:015d}"
            if b < 0:
                m = -b
                zb = f"{m // 10:014d}{neg[m % 10]}"
            elif j & 3:
                zb = f"{b // 10:014d}{pos[b % 10]}"
            else:
                zb = f"{b:015d}"
            lines.append(
                f"D{tid}{accts[a]}{ds[pdi]}{clock[sec]}{ds[pdi + vdt[int(r() * 20)]]}{code}"
                f"{za}{curs[a]}{chans[ci][int(r() * 8)]}{descs[ci][int(r() * 32)]}{zb}"
                f"{rev}{branches[a]}{filler}\n"
            )
            tids.append(tid)
            cents.append(c)
            accs.append(a)
        return _Batch(lines, tids, cents)

    def _tid_of(self, line: str) -> str:
        return line[_C_TID[0] : _C_TID[1]].strip()

    def _mutate(self, rng: random.Random, line: str, reason: str, variant: int, day: int) -> str:
        if reason == "BAD_TXN_ID":
            digits = line[3:21]
            bad = (f"CB{digits[:17]}X", f"XB{digits}", f"CB{digits[6:]}".ljust(20))
            return _put(line, *_C_TID, bad[variant % 3])
        if reason == "BAD_ACCOUNT":
            acct = line[21:33]
            bad = (acct[:5] + "ABC" + acct[8:], acct[1:] + " ", " " * 12)
            return _put(line, *_C_ACCT, bad[variant % 3])
        if reason == "BAD_DATE":
            bd = self.day(day).strftime("%Y%m%d")
            v = variant % 3
            if v == 0:
                return _put(line, *_C_PDATE, bd[:4] + "13" + bd[6:])
            if v == 1:
                return _put(line, *_C_VDATE, bd[:4] + "0230")
            return _put(line, *_C_PDATE, "18991231")
        if reason == "BAD_TIME":
            return _put(line, *_C_PTIME, _CORE_BAD_VALUES[reason][variant % 3])
        if reason == "BAD_CURRENCY":
            return _put(line, *_C_CUR, _CORE_BAD_VALUES[reason][variant % 3])
        if reason == "UNKNOWN_TXN_CODE":
            line = _put(line, *_C_REV, _BLANK20)
            return _put(line, *_C_CODE, _CORE_BAD_VALUES[reason][variant % 3])
        raise ValueError(f"no record mutation for {reason}")

    def _bad_reversal(self, rng: random.Random, line: str, variant: int, ref: str) -> str:
        if variant % 2 == 0:  # REV without the reversed id
            return _put(_put(line, *_C_CODE, "REV "), *_C_REV, _BLANK20)
        code = line[_C_CODE[0] : _C_CODE[1]]
        if code == "REV ":
            line = _put(line, *_C_CODE, "DEP ")
        return _put(line, *_C_REV, ref.ljust(20))

    def _conflict(self, rng: random.Random, line: str, cents: int) -> tuple[str, int]:
        delta = 1 + int(rng.random() * 99)
        new = cents - delta if cents < 0 else cents + delta
        plain = line[_C_AMT[1] - 1].isdigit()
        return _put(line, *_C_AMT, _zoned(new, plain)), new

    def render(self, day: int, seq: int, lines: list[str], cents: list[int]) -> tuple[str, str]:
        """Header and trailer for a file with these detail records."""
        bd = self.day(day)
        created = (bd + timedelta(days=1)).strftime("%Y%m%d") + f"0{1 + seq // 60}{seq % 60:02d}00"
        header = f"HCOREBNK {bd:%Y%m%d}{seq:06d}{created}{' ' * 163}\n"
        debit = -sum(c for c in cents if c < 0)
        credit = sum(c for c in cents if c > 0)
        trailer = f"T{len(lines):09d}{debit:017d}{credit:017d}{' ' * 156}\n"
        return header, trailer

    @staticmethod
    def name(bd: date, seq: int) -> str:
        """File name for a business date and sequence number."""
        return f"CORE_TXN_{bd:%Y%m%d}_{seq:06d}.dat"

    def normal_file(self, day: int, fi: int, n: int) -> FileOutcome:
        """Write one loadable file; return its expected outcome."""
        rng = self.rng_for(day, fi)
        batch = self.detail_batch(rng, n, day, fi)
        header, trailer = self.render(day, fi, batch.lines, batch.cents)
        bd = self.day(day)
        name = self.name(bd, fi)
        self.write(name, (header + "".join(batch.lines) + trailer).encode("latin-1"))
        q, accepted, new_rows = self.resolve(batch)
        self.file_no += 1
        return FileOutcome(name, bd, n, None, q, accepted, new_rows)

    def error_file(self, reason: str, i: int, n: int, days: int) -> FileOutcome:
        """Write one file that must be rejected with ``reason``."""
        seq = _ERROR_FILE_SEQ + i
        rng = self.rng_for("file-error", reason)
        batch = self._records(rng, n, 0, seq, set(), list(self.balances))
        lines, cents = batch.lines, batch.cents
        bd = self.day(0)
        name = self.name(bd, seq)
        if reason == "EMPTY_FILE":
            self.write(name, b"")
            return FileOutcome(name, bd, 0, reason)
        header, trailer = self.render(0, seq, lines, cents)
        k = len(lines) // 2
        if reason == "MALFORMED_RECORD":
            lines[k] = lines[k][:199] + "\n"
        elif reason == "MISSING_HEADER":
            header = ""
        elif reason == "MISSING_TRAILER":
            trailer = ""
            del lines[max(1, len(lines) - 3) :]
        elif reason == "BAD_HEADER":
            header = "H" + "XXXXXXX " + header[9:]
        elif reason == "BAD_AMOUNT_FIELD":
            amt = lines[k][_C_AMT[0] : _C_AMT[1]]
            lines[k] = _put(lines[k], *_C_AMT, amt[:6] + " " + amt[7:])
        elif reason == "CONTROL_COUNT_MISMATCH":
            trailer = f"T{len(lines) + 1:09d}" + trailer[10:]
        elif reason == "CONTROL_TOTAL_MISMATCH":
            debit = int(trailer[10:27]) + 1
            trailer = trailer[:10] + f"{debit:017d}" + trailer[27:]
        else:
            raise ValueError(f"unknown file error {reason}")
        self.write(name, (header + "".join(lines) + trailer).encode("latin-1"))
        return FileOutcome(name, bd, len(lines), reason)


class _CardsWriter(_Writer):
    """``cards``: pipe-delimited UTF-8 settlement files."""

    source = "cards"

    def __init__(self, out: Path, **kw: Any) -> None:
        super().__init__(out, **kw)
        self.merchants = tuple((_csv_field(name), mcc) for name, mcc in _CARD_MERCHANTS)

    def _round(self) -> list[tuple[str, int | str]]:
        return [
            ("BAD_TXN_ID", 0),
            ("BAD_ACCOUNT", 0),
            ("BAD_DATE", 0),
            ("BAD_TIME", 0),
            ("BAD_CURRENCY", 0),
            ("BAD_MCC", 0),
            (DUP, _DUP_COPY),
            (DUP, _DUP_CONFLICT),
            (DUP, _DUP_RESEND),
            (DUP, _DUP_REUSE),
        ]

    def _records(
        self, rng: random.Random, n: int, day: int, fi: int, bad: set[int], balances: list[int]
    ) -> _Batch:
        r = rng.random
        bd = self.day(day)
        ds = ((bd - timedelta(days=1)).strftime("%d/%m/%Y"), bd.strftime("%d/%m/%Y"))
        keys = sorted(
            [int(r() * 86400) + (0 if r() < _PREV_DAY_SHARE else 86400) for _ in range(n)]
        )
        clock = _clock(":")
        a3 = _alnum3()
        n3 = len(a3)
        accts, curs = self.accts, self.acct_curs
        n_acc = len(accts)
        merchants = self.merchants
        n_m = len(merchants)
        fx = _CARDS_FX
        n_fx = len(fx)
        base = f"CD{self.prefix}{day:05d}"
        tids: list[str] = []
        lines: list[str] = []
        cents: list[int] = []
        for j in range(n):
            key = keys[j]
            if key >= 86400:
                dstr = ds[1]
                sec = key - 86400
            else:
                dstr = ds[0]
                sec = key
            tid = f"{base}{j + 1:07d}"
            a = int(r() * n_acc)
            u = r()
            if u < 0.88:
                c = -(100 + int(r() * r() * 150_000))
                m = -c
                amt = f"-{m // 100}.{m % 100:02d}"
            elif u < 0.995:
                c = 100 + int(r() * 50_000)
                amt = f"{c // 100}.{c % 100:02d}"
            else:
                c = 0
                amt = "0.00"
            mname, mcc = merchants[int(r() * n_m)]
            cur = curs[a] if r() < 0.9 else fx[int(r() * n_fx)]
            lines.append(
                f"{tid}|{accts[a]}|{dstr}|{clock[sec]}|{amt}|{cur}|{mname}|{mcc}|"
                f"{a3[int(r() * n3)]}{a3[int(r() * n3)]}\n"
            )
            tids.append(tid)
            cents.append(c)
        return _Batch(lines, tids, cents)

    @staticmethod
    def _split(line: str) -> list[str]:
        """The nine raw fields of a generated line (quotes kept)."""
        head = line.rstrip("\n").split("|", 6)
        merchant, mcc, auth = head[6].rsplit("|", 2)
        return [*head[:6], merchant, mcc, auth]

    @staticmethod
    def _join(fields: list[str]) -> str:
        return "|".join(fields) + "\n"

    def _tid_of(self, line: str) -> str:
        return line.split("|", 1)[0]

    def _mutate(self, rng: random.Random, line: str, reason: str, variant: int, day: int) -> str:
        f = self._split(line)
        v3 = variant % 3
        if reason == "BAD_TXN_ID":
            digits = f[0][2:]
            f[0] = (f"CD{digits[:15]}X", f"XD{digits}", f"CD{digits[6:]}")[v3]
        elif reason == "BAD_ACCOUNT":
            acct = f[1]
            f[1] = (acct[1:], acct[:4] + "ABC" + acct[7:], "")[v3]
        elif reason == "BAD_DATE":
            year = self.day(day).year
            f[2] = (f"31/04/{year}", f"30/02/{year}", f"15/13/{year}", "01/01/1899")[variant % 4]
        elif reason == "BAD_TIME":
            f[3] = _CARDS_BAD_VALUES[reason][v3]
        elif reason == "BAD_CURRENCY":
            f[5] = _CARDS_BAD_VALUES[reason][v3]
        elif reason == "BAD_MCC":
            f[7] = _CARDS_BAD_VALUES[reason][v3]
        else:
            raise ValueError(f"no record mutation for {reason}")
        return self._join(f)

    def _bad_reversal(self, rng: random.Random, line: str, variant: int, ref: str) -> str:
        raise ValueError("cards records have no reversal field")

    def _conflict(self, rng: random.Random, line: str, cents: int) -> tuple[str, int]:
        f = self._split(line)
        a3 = _alnum3()
        while True:
            auth = a3[int(rng.random() * len(a3))] + a3[int(rng.random() * len(a3))]
            if auth != f[8]:
                break
        f[8] = auth
        return self._join(f), cents

    @staticmethod
    def name(bd: date) -> str:
        """File name for a business date."""
        return f"CARDS_{bd:%Y%m%d}.csv"

    @staticmethod
    def trailer(count: int, net: int) -> str:
        """``TRL|<count>|<net total>`` line."""
        return f"TRL|{count}|{_decimal2(net)}\n"

    def normal_file(self, day: int, fi: int, n: int) -> FileOutcome:
        """Write one loadable file; return its expected outcome."""
        rng = self.rng_for(day)
        batch = self.detail_batch(rng, n, day, fi)
        bd = self.day(day)
        name = self.name(bd)
        text = (
            CARDS_COLUMN_HEADER
            + "\n"
            + "".join(batch.lines)
            + self.trailer(len(batch.lines), sum(batch.cents))
        )
        self.write(name, text.encode("utf-8"))
        q, accepted, new_rows = self.resolve(batch)
        self.file_no += 1
        return FileOutcome(name, bd, n, None, q, accepted, new_rows)

    def error_file(self, reason: str, i: int, n: int, days: int) -> FileOutcome:
        """Write one file that must be rejected with ``reason`` (on a day after the run)."""
        day = days + i
        rng = self.rng_for("file-error", reason)
        batch = self._records(rng, n, day, 1, set(), [])
        lines, cents = batch.lines, batch.cents
        bd: date | None = self.day(day)
        assert bd is not None
        name = self.name(bd)
        header = CARDS_COLUMN_HEADER + "\n"
        trailer = self.trailer(len(lines), sum(cents))
        k = len(lines) // 2
        if reason == "BAD_FILE_NAME":
            name = f"CARDS_{bd.year:04d}-13-45.csv"
            bd = None
        elif reason == "EMPTY_FILE":
            self.write(name, b"")
            return FileOutcome(name, bd, 0, reason)
        elif reason == "BAD_COLUMN_HEADER":
            header = CARDS_COLUMN_HEADER.replace("MERCHANT_NAME", "MERCHANT") + "\n"
        elif reason == "MISSING_TRAILER":
            trailer = ""
            del lines[max(1, len(lines) - 3) :]
        elif reason == "MALFORMED_RECORD":
            lines[k] = lines[k].rstrip("\n").rsplit("|", 1)[0] + "\n"  # 8 fields
        elif reason == "BAD_AMOUNT_FIELD":
            f = self._split(lines[k])
            f[4] = "12.5"
            lines[k] = self._join(f)
        elif reason == "CONTROL_COUNT_MISMATCH":
            trailer = self.trailer(len(lines) + 1, sum(cents))
        elif reason == "CONTROL_TOTAL_MISMATCH":
            trailer = self.trailer(len(lines), sum(cents) + 1)
        else:
            raise ValueError(f"unknown file error {reason}")
        self.write(name, (header + "".join(lines) + trailer).encode("utf-8"))
        return FileOutcome(name, bd, len(lines), reason)


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _file_error_list(source: str, file_errors: Sequence[str] | str) -> list[str]:
    if isinstance(file_errors, str):
        file_errors = [p for p in file_errors.split(",") if p.strip()]
    known = FILE_ERRORS[source]
    out: list[str] = []
    for item in file_errors:
        reason = item.strip().upper()
        if reason == "ALL":
            out.extend(r for r in known if r not in out)
            continue
        if reason not in known:
            raise ValueError(
                f"unknown file error {item!r} for {source}; expected one of {', '.join(known)}"
            )
        if reason not in out:
            out.append(reason)
    return out


def generate(
    out_dir: Path | str,
    *,
    source: str,
    start: date | str,
    days: int,
    accounts: int = 200,
    records_per_day: int = 100,
    seed: int = 42,
    record_errors: bool = False,
    file_errors: Sequence[str] | str = (),
    error_rate: float = 0.02,
    files_per_day: int = 1,
) -> Manifest:
    """Write ``days`` business days of ``source`` files into ``out_dir``.

    ``records_per_day`` detail records are spread over ``files_per_day`` files
    per day (``cards``: one file per day). With ``record_errors`` about
    ``error_rate`` of each file's records are made invalid, every reason of
    :data:`RECORD_ERRORS` in every file of at least 20 records. Each reason in
    ``file_errors`` (``"all"`` for every one) adds one file rejected with it.
    Returns the outcome a correct loader must produce.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    start = _as_date(start)
    for label, value in (
        ("days", days),
        ("accounts", accounts),
        ("records_per_day", records_per_day),
        ("files_per_day", files_per_day),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must lie in [0, 1], got {error_rate!r}")
    if source == "cards" and files_per_day != 1:
        raise ValueError("cards has exactly one file per business day (the name is authoritative)")
    if files_per_day >= _ERROR_FILE_SEQ:
        raise ValueError(f"files_per_day must be below {_ERROR_FILE_SEQ}")
    if -(-records_per_day // files_per_day) > _MAX_RECORDS_PER_FILE:
        raise ValueError("too many records per file")
    errors = _file_error_list(source, file_errors)
    extra_days = len(errors) if source == "cards" else 0
    if start < _MIN_DATE or start + timedelta(days=days + extra_days) > _MAX_DATE:
        raise ValueError("dates must stay between 1900-01-02 and 2099-12-30")
    if days + extra_days > 99_999:
        raise ValueError("at most 99999 days")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cls = _CoreWriter if source == "core_banking" else _CardsWriter
    writer = cls(
        out,
        start=start,
        seed=seed,
        accounts=accounts,
        record_errors=record_errors,
        error_rate=error_rate,
    )
    outcomes: list[FileOutcome] = []
    per_file, extra = divmod(records_per_day, files_per_day)
    for d in range(days):
        for fi in range(1, files_per_day + 1):
            n = per_file + (1 if fi <= extra else 0)
            outcomes.append(writer.normal_file(d, fi, n))
    error_records = max(4, min(records_per_day, 50))
    for i, reason in enumerate(errors):
        outcomes.append(writer.error_file(reason, i, error_records, days))
    outcomes.sort(key=lambda f: f.name)
    return Manifest(source=source, files=outcomes)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1]: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ledgerlake generate``."""
    parser.add_argument("--source", required=True, choices=SOURCES, help="feed to generate")
    parser.add_argument("--out", required=True, type=Path, help="directory to write into")
    span = parser.add_mutually_exclusive_group()
    span.add_argument("--years", type=_positive_int, help="number of years (365 days each)")
    span.add_argument("--days", type=_positive_int, help="number of business days (default 30)")
    parser.add_argument(
        "--start", type=_iso_date, default=DEFAULT_START, help="first business date (YYYY-MM-DD)"
    )
    parser.add_argument("--accounts", type=_positive_int, default=200, help="account pool size")
    parser.add_argument(
        "--records-per-day", type=_positive_int, default=100, help="detail records per day"
    )
    parser.add_argument(
        "--files-per-day", type=_positive_int, default=1, help="files per day (core_banking)"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument(
        "--inject-errors", action="store_true", help="make some records invalid on purpose"
    )
    parser.add_argument(
        "--error-rate", type=_rate, default=0.02, help="share of invalid records per file"
    )
    parser.add_argument(
        "--file-errors",
        default="",
        metavar="all|R1,R2",
        help="add one rejected file per reason ('all' for every reason of the source)",
    )
    parser.add_argument(
        "--manifest", type=Path, help="write the expected load outcome (JSON) to this file"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``ledgerlake generate``; prints a one-line summary."""
    source = getattr(args, "source", None)
    if source not in SOURCES:
        print(f"ledgerlake generate: unknown source {source!r}", file=sys.stderr)
        return 2
    years = getattr(args, "years", None)
    days = getattr(args, "days", None)
    if years is not None and days is not None:
        print("ledgerlake generate: give --years or --days, not both", file=sys.stderr)
        return 2
    total_days = 365 * years if years is not None else (days if days is not None else 30)
    try:
        file_errors = _file_error_list(source, getattr(args, "file_errors", "") or "")
        t0 = time.perf_counter()
        manifest = generate(
            args.out,
            source=source,
            start=getattr(args, "start", DEFAULT_START),
            days=total_days,
            accounts=getattr(args, "accounts", 200),
            records_per_day=getattr(args, "records_per_day", 100),
            seed=getattr(args, "seed", 42),
            record_errors=bool(getattr(args, "inject_errors", False)),
            file_errors=file_errors,
            error_rate=getattr(args, "error_rate", 0.02),
            files_per_day=getattr(args, "files_per_day", 1),
        )
        seconds = time.perf_counter() - t0
    except ValueError as exc:
        print(f"ledgerlake generate: {exc}", file=sys.stderr)
        return 2
    manifest_path = getattr(args, "manifest", None)
    if manifest_path:
        Path(manifest_path).parent.mkdir(parents=True, exist_ok=True)
        Path(manifest_path).write_text(manifest.to_json(), encoding="utf-8")
    print(
        f"generated {len(manifest.files)} {source} files, {manifest.total_records} records "
        f"({manifest.total_quarantined} to quarantine, {len(manifest.rejected_files)} files "
        f"to reject) in {seconds:.1f} s -> {args.out}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ledgerlake.samples.legacy``."""
    parser = argparse.ArgumentParser(prog="ledgerlake generate", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
