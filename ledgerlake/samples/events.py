"""Deterministic generator of ``events`` landing files, and the outcome a correct stream must produce.

The feed's awkward habits are all there on purpose: repeated events (the same
event_id again, in a later file), versions landing out of order, corrections
(some moving the posting date to another month), cancellations followed by a late
re-delivery of an older version, timestamps with offsets, and bad lines of every
kind. :class:`EventsOutcome` is computed in plain Python from the contract's
semantics (the highest sequence per txn_id wins; a cancellation removes it), so
tests and benchmarks compare what the lake holds with an independent answer.

    python -m ledgerlake.samples.events --out /tmp/landing --files 20 --events-per-file 50 --seed 1

Files are written under a temporary name and renamed, as the contract's producers do.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

TXN_CODES = ("DEP", "WDL", "TRF", "FEE", "INT", "POS", "ATM", "CHQ")
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY")
CHANNELS = ("BRN", "ATM", "POS", "WEB", "MOB", "BAT")
DESCRIPTIONS = ("Café Central", "Zürich", "SALARY", "RENT", "Señor Taco", "Crème", "ATM", "")

# Bad lines, one per rule of the contract (or the JSON itself).
BAD_KINDS = ("not_json", "not_object", "missing_field", "bad_event_type", "bad_txn_id", "bad_sequence",
             "bad_account", "bad_timestamp", "bad_date", "bad_code", "bad_amount", "bad_currency",
             "bad_reversal", "wrong_type")


def land_file(folder: Path, name: str, lines: list[str], mtime: float | None = None) -> Path:
    """Write a landing file atomically: a hidden temporary name first, then the rename."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    target = folder / name
    os.replace(tmp, target)
    return target


def render(event: dict[str, Any]) -> str:
    """One JSON line, UTF-8 (non-ASCII kept)."""
    return json.dumps(event, ensure_ascii=False)


@dataclass
class EventsOutcome:
    """What applying the generated files to an empty lake must give."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)   # txn_id -> contract columns (as text)
    cancelled: set[str] = field(default_factory=set)
    bad_lines: list[tuple[str, int]] = field(default_factory=list)  # (file, line number)
    files: list[str] = field(default_factory=list)
    lines: int = 0

    def serving(self, first_day: date, last_day: date) -> set[str]:
        """txn_ids whose posting date lies in the window."""
        return {t for t, r in self.rows.items() if first_day <= date.fromisoformat(r["posting_date"]) <= last_day}

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "cancelled": sorted(self.cancelled),
                "bad_lines": [list(b) for b in self.bad_lines], "files": self.files, "lines": self.lines}


class EventFactory:
    """Events of one txn_id family, with random but reproducible fields."""

    def __init__(self, seed: int, accounts: int = 40) -> None:
        self.rng = random.Random(seed)
        self.accounts = [f"{self.rng.randrange(10**12):012d}" for _ in range(accounts)]

    def posting(self, txn_id: str, sequence: int, posted_at: datetime, event_type: str = "TXN_POSTED",
                reversal_of: str | None = None) -> dict[str, Any]:
        rng = self.rng
        cents = rng.randrange(1, 500_000) * (1 if rng.random() < 0.4 else -1)
        offset = rng.choice((0, 0, 0, 60, -300, 120))
        local = posted_at.astimezone(timezone(timedelta(minutes=offset)))
        stamp = local.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if offset == 0 and rng.random() < 0.7 else
                                                       local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:])
        return {
            "event_id": f"ev-{txn_id}-{sequence}",
            "event_type": event_type,
            "txn_id": txn_id,
            "sequence": sequence,
            "account_no": rng.choice(self.accounts),
            "posted_at": stamp,
            "value_date": posted_at.date().isoformat(),
            "txn_code": "REV" if reversal_of else rng.choice(TXN_CODES),
            "amount": _amount(cents, rng),
            "currency": rng.choice(CURRENCIES),
            "channel": rng.choice(CHANNELS),
            "description": rng.choice(DESCRIPTIONS),
            "balance_after": None if rng.random() < 0.1 else _amount(rng.randrange(0, 10_000_000), rng),
            "reversal_of": reversal_of,
            "emitted_at": (posted_at + timedelta(seconds=sequence)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    @staticmethod
    def cancellation(txn_id: str, sequence: int, at: datetime) -> dict[str, Any]:
        return {"event_id": f"ev-{txn_id}-{sequence}-c", "event_type": "TXN_CANCELLED", "txn_id": txn_id,
                "sequence": sequence, "emitted_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def bad_line(self, kind: str, template: dict[str, Any]) -> str:
        """A line breaking one rule; ``template`` is a valid posting to spoil."""
        event = dict(template, event_id=f"bad-{kind}-{self.rng.randrange(10**9)}")
        spoil: dict[str, Any] = {
            "bad_event_type": {"event_type": "TXN_DELETED"},
            "bad_txn_id": {"txn_id": "ZZ" + template["txn_id"][2:]},
            "bad_sequence": {"sequence": self.rng.choice((0, -1, "2", 1.5))},
            "bad_account": {"account_no": "12345"},
            "bad_timestamp": {"posted_at": self.rng.choice(("yesterday", "2026-07-31 06:09:56", "2026-07-31T25:00:00Z"))},
            "bad_date": {"value_date": self.rng.choice(("2026-02-30", "31/07/2026"))},
            "bad_code": {"txn_code": "XYZ"},
            "bad_amount": {"amount": self.rng.choice(("12,50", "1.234", "", "abc"))},
            "bad_currency": {"currency": "XXX"},
            "bad_reversal": {"txn_code": "POS", "reversal_of": template["txn_id"]},
            "wrong_type": {"amount": 12.5},
        }
        if kind == "not_json":
            return render(event)[: self.rng.randrange(5, 40)]
        if kind == "not_object":
            return self.rng.choice(("[]", '"text"', "42", "null"))
        if kind == "missing_field":
            del event[self.rng.choice(("event_type", "txn_id", "sequence", "amount", "posted_at", "emitted_at"))]
            return render(event)
        event.update(spoil[kind])
        return render(event)


def _amount(cents: int, rng: random.Random) -> str:
    text = f"{Decimal(cents) / 100:.2f}"
    # producers drop trailing zeros sometimes ("-12.5"); both are valid
    if rng.random() < 0.2 and text.endswith("0"):
        text = text.rstrip("0").rstrip(".")
    return text


def expected_row(event: dict[str, Any]) -> dict[str, Any]:
    """The contract columns a valid posting event gives in silver (values as text, UTC)."""
    posted = datetime.fromisoformat(event["posted_at"].replace("Z", "+00:00")).astimezone(UTC)
    balance = event.get("balance_after")
    return {
        "txn_id": event["txn_id"],
        "account_id": event["account_no"],
        "posting_date": posted.date().isoformat(),
        "posted_at": posted.strftime("%Y-%m-%dT%H:%M:%S"),
        "value_date": event["value_date"],
        "txn_code": event["txn_code"],
        "amount": f"{Decimal(event['amount']):.2f}",
        "currency": event["currency"],
        "channel": event["channel"],
        "description": event["description"].strip(),
        "balance_after": None if balance is None else f"{Decimal(balance):.2f}",
        "reversal_of": event.get("reversal_of"),
        "event_sequence": event["sequence"],
    }


def generate_events(out: Path, files: int = 20, events_per_file: int = 40, seed: int = 1,
                    start: date = date(2026, 5, 1), end: date = date(2026, 11, 25), bad_share: float = 0.03,
                    prefix: str = "events", txn_base: int = 0, land: bool = True) -> tuple[EventsOutcome, list[list[str]]]:
    """Plan ``files`` landing files of about ``events_per_file`` lines; write them when ``land``.

    Returns the expected outcome and the lines of each file (in landing order).
    """
    rng = random.Random(seed)
    factory = EventFactory(seed + 1)
    span = (end - start).days + 1
    buckets: list[list[tuple[str, bool]]] = [[] for _ in range(files)]   # (line, is_bad)
    truth: dict[str, tuple[int, dict[str, Any] | None]] = {}             # txn_id -> (sequence, posting or None)
    n_txns = max(1, files * events_per_file * 10 // 14)

    def place(line: str, first: int, spread: int = 3, bad: bool = False) -> None:
        buckets[min(files - 1, first + rng.randrange(spread + 1))].append((line, bad))

    for i in range(n_txns):
        txn_id = f"CB{txn_base + i:018d}"
        home = i * files // n_txns
        posted_at = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(
            days=rng.randrange(span), seconds=rng.randrange(86_400))
        versions = [factory.posting(txn_id, 1, posted_at)]
        roll = rng.random()
        if roll < 0.15:                                  # a correction, a third of them to another month
            moved = posted_at + timedelta(days=rng.choice((-40, 35, 0, 0, 1, -1))) if rng.random() < 0.5 else posted_at
            moved = min(max(moved, datetime(start.year, start.month, start.day, tzinfo=UTC)),
                        datetime(end.year, end.month, end.day, 23, 59, tzinfo=UTC))
            versions.append(factory.posting(txn_id, 2, moved, "TXN_CORRECTED"))
        cancel = None
        if rng.random() < 0.06:
            cancel = factory.cancellation(txn_id, len(versions) + 1, posted_at + timedelta(hours=1))
        if rng.random() < 0.03 and i > 0:                # a reversal of an earlier transaction
            versions[-1] = factory.posting(txn_id, versions[-1]["sequence"], posted_at,
                                           versions[-1]["event_type"], reversal_of=f"CB{txn_base + i - 1:018d}")
        for v in versions:                               # disorder: each version lands within a few files
            place(render(v), home)
        if cancel is not None:
            cancel_file = min(files - 1, home + rng.randrange(3))
            buckets[cancel_file].append((render(cancel), False))
            if cancel_file + 1 < files:                  # the older posting re-delivered after the cancellation
                place(render(versions[0]), cancel_file + 1, 2)
        if rng.random() < 0.08:                          # at-least-once: the same event again, later
            place(render(rng.choice(versions)), home, 4)
        final = cancel if cancel is not None else versions[-1]
        truth[txn_id] = (final["sequence"], None if cancel is not None else versions[-1])

    n_bad = int(files * events_per_file * bad_share)
    template = factory.posting("CB999999999999999999", 1, datetime(start.year, start.month, start.day, tzinfo=UTC))
    for k in range(n_bad):
        place(factory.bad_line(BAD_KINDS[k % len(BAD_KINDS)], template), rng.randrange(files), 0, bad=True)

    outcome = EventsOutcome()
    contents: list[list[str]] = []
    for index, bucket in enumerate(buckets):
        rng.shuffle(bucket)
        name = f"{prefix}-{index:05d}.jsonl"
        outcome.files.append(name)
        outcome.bad_lines += [(name, n + 1) for n, (_, bad) in enumerate(bucket) if bad]
        outcome.lines += len(bucket)
        contents.append([line for line, _ in bucket])
        if land:
            land_file(out, name, contents[-1])
    for txn_id, (_, posting) in truth.items():
        if posting is None:
            outcome.cancelled.add(txn_id)
        else:
            outcome.rows[txn_id] = expected_row(posting)
    return outcome, contents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledgerlake.samples.events",
                                     description="Write a deterministic events landing zone and its expected outcome.")
    parser.add_argument("--out", required=True, type=Path, help="landing directory to write")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--events-per-file", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--expected", type=Path, help="write the expected outcome (JSON) here")
    args = parser.parse_args(argv)
    outcome, _ = generate_events(args.out, args.files, args.events_per_file, args.seed)
    if args.expected:
        args.expected.write_text(json.dumps(outcome.to_dict(), indent=1, sort_keys=True), encoding="utf-8")
    print(f"{len(outcome.files)} files, {outcome.lines} lines, {len(outcome.rows)} transactions, "
          f"{len(outcome.cancelled)} cancelled, {len(outcome.bad_lines)} bad lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
