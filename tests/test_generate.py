"""Tests of the legacy batch file generator (pure Python, no Spark).

The expected outcome the generator reports is checked against a small
reference loader written here straight from the interface contracts.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest

try:
    from ledgerlake.samples import legacy as gen
except ImportError:  # tests run from a plain checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ledgerlake.samples import legacy as gen

START = date(2024, 2, 27)
CURRENCIES = set(
    "USD EUR GBP INR JPY CHF AUD CAD SGD HKD CNY AED SAR ZAR SEK NOK DKK NZD".split()
)
CORE_CODES = set("DEP WDL TRF FEE INT POS ATM CHQ REV".split())
CARDS_HEADER = (
    "CARD_TXN_REF|ACCOUNT_NO|TXN_DATE|TXN_TIME|AMOUNT|CURRENCY|MERCHANT_NAME|MCC|AUTH_CODE"
)
POS_PUNCH = "{ABCDEFGHI"
NEG_PUNCH = "}JKLMNOPQR"
DIGITS = re.compile(r"[0-9]+")


# --------------------------------------------------------------------------
# Reference decoding and loading, from the contracts
# --------------------------------------------------------------------------


def decode_zoned(text: str) -> int | None:
    """Cents of a PIC S9(13)V99 trailing-overpunch field, or None when invalid."""
    if len(text) != 15 or not DIGITS.fullmatch(text[:14]):
        return None
    last = text[14]
    if last in "0123456789":
        return int(text)
    if last in POS_PUNCH:
        return int(text[:14]) * 10 + POS_PUNCH.index(last)
    if last in NEG_PUNCH:
        return -(int(text[:14]) * 10 + NEG_PUNCH.index(last))
    return None


def parse_ymd(text: str) -> date | None:
    """A YYYYMMDD date within 1900-01-01..2099-12-31, or None."""
    if len(text) != 8 or not DIGITS.fullmatch(text):
        return None
    try:
        value = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None
    return value if date(1900, 1, 1) <= value <= date(2099, 12, 31) else None


def valid_hms(h: str, m: str, s: str) -> bool:
    """Hours, minutes and seconds (two digits each) form a time of day."""
    if not all(len(x) == 2 and DIGITS.fullmatch(x) for x in (h, m, s)):
        return False
    return int(h) < 24 and int(m) < 60 and int(s) < 60


def cents_of(amount: str) -> int:
    """Cents of a ``-?digits.dd`` amount."""
    sign = -1 if amount.startswith("-") else 1
    whole, frac = amount.lstrip("-").split(".")
    return sign * (int(whole) * 100 + int(frac))


def split_records(data: bytes, encoding: str) -> list[str]:
    """Lines of a file without separators (LF or CRLF; last one optional)."""
    lines = data.decode(encoding).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [x[:-1] if x.endswith("\r") else x for x in lines]


def core_file_reason(recs: list[str]) -> str | None:
    """First failing file-level check of a core_banking file."""
    if not recs:
        return "EMPTY_FILE"
    types = [r[:1] for r in recs]
    if (
        any(len(r) != 200 for r in recs)
        or any(t not in ("H", "D", "T") for t in types)
        or types.count("H") > 1
        or types.count("T") > 1
        or ("T" in types and types.index("T") != len(types) - 1)
    ):
        return "MALFORMED_RECORD"
    if types[0] != "H":
        return "MISSING_HEADER"
    if types[-1] != "T":
        return "MISSING_TRAILER"
    if recs[0][1:9] != "COREBNK " or parse_ymd(recs[0][9:17]) is None:
        return "BAD_HEADER"
    details = [r for r in recs if r[0] == "D"]
    amounts = [decode_zoned(r[59:74]) for r in details]
    if any(a is None for a in amounts) or any(decode_zoned(r[120:135]) is None for r in details):
        return "BAD_AMOUNT_FIELD"
    trailer = recs[-1]
    if int(trailer[1:10]) != len(details):
        return "CONTROL_COUNT_MISMATCH"
    debit = -sum(a for a in amounts if a is not None and a < 0)
    credit = sum(a for a in amounts if a is not None and a > 0)
    if int(trailer[10:27]) != debit or int(trailer[27:44]) != credit:
        return "CONTROL_TOTAL_MISMATCH"
    return None


def core_record_reason(rec: str) -> str | None:
    """First failing record-level check (duplicates aside) of a core_banking detail."""
    if not re.fullmatch(r"CB[0-9]{18}", rec[1:21].strip()):
        return "BAD_TXN_ID"
    if not re.fullmatch(r"[0-9]{12}", rec[21:33]):
        return "BAD_ACCOUNT"
    if parse_ymd(rec[33:41]) is None or parse_ymd(rec[47:55]) is None:
        return "BAD_DATE"
    t = rec[41:47]
    if not valid_hms(t[:2], t[2:4], t[4:]):
        return "BAD_TIME"
    if rec[74:77] not in CURRENCIES:
        return "BAD_CURRENCY"
    code = rec[55:59].strip()
    if code not in CORE_CODES:
        return "UNKNOWN_TXN_CODE"
    if (code == "REV") != bool(rec[135:155].strip()):
        return "BAD_REVERSAL"
    return None


def parse_card_line(line: str) -> list[str] | None:
    """Fields of a cards line (RFC 4180 with ``|``), or None when the quoting is broken."""
    try:
        return next(csv.reader([line], delimiter="|", quotechar='"', strict=True))
    except csv.Error:
        return None


def card_date(text: str) -> date | None:
    """A DD/MM/YYYY date within range, or None."""
    m = re.fullmatch(r"([0-9]{2})/([0-9]{2})/([0-9]{4})", text)
    return parse_ymd(f"{m.group(3)}{m.group(2)}{m.group(1)}") if m else None


def cards_file_reason(name: str, data: bytes) -> tuple[str | None, list[list[str]]]:
    """First failing file-level check of a cards file, and its detail records."""
    m = re.fullmatch(r"CARDS_([0-9]{8})\.csv", name)
    if not m or parse_ymd(m.group(1)) is None:
        return "BAD_FILE_NAME", []
    if not data:
        return "EMPTY_FILE", []
    lines = split_records(data, "utf-8")
    if lines[0] != CARDS_HEADER:
        return "BAD_COLUMN_HEADER", []
    trailer_re = re.compile(r"TRL\|[0-9]+\|-?[0-9]+\.[0-9]{2}")
    trailers = [i for i, x in enumerate(lines) if trailer_re.fullmatch(x)]
    if not trailers:
        return "MISSING_TRAILER", []
    t = trailers[0]
    if t != len(lines) - 1:
        return "MALFORMED_RECORD", []
    rows = [parse_card_line(x) for x in lines[1:t]]
    if any(r is None or len(r) != 9 for r in rows):
        return "MALFORMED_RECORD", []
    good_rows = [r for r in rows if r is not None]
    if any(not re.fullmatch(r"-?[0-9]+\.[0-9]{2}", r[4]) for r in good_rows):
        return "BAD_AMOUNT_FIELD", []
    _, count, total = lines[t].split("|")
    if int(count) != len(good_rows):
        return "CONTROL_COUNT_MISMATCH", []
    if cents_of(total) != sum(cents_of(r[4]) for r in good_rows):
        return "CONTROL_TOTAL_MISMATCH", []
    return None, good_rows


def cards_record_reason(row: list[str]) -> str | None:
    """First failing record-level check (duplicates aside) of a cards detail."""
    if not re.fullmatch(r"CD[0-9]{16}", row[0]):
        return "BAD_TXN_ID"
    if not re.fullmatch(r"[0-9]{12}", row[1]):
        return "BAD_ACCOUNT"
    if card_date(row[2]) is None:
        return "BAD_DATE"
    t = row[3]
    if not (len(t) == 8 and t[2] == ":" and t[5] == ":" and valid_hms(t[:2], t[3:5], t[6:])):
        return "BAD_TIME"
    if row[5] not in CURRENCIES:
        return "BAD_CURRENCY"
    if not re.fullmatch(r"[0-9]{4}", row[7]):
        return "BAD_MCC"
    return None


class ReferenceLoader:
    """Loads files in order into an in-memory 'silver' and reports per-file outcomes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.silver: dict[str, object] = {}
        self.records: list[tuple[str, str, str]] = []  # (txn_id, file, status or reason)

    def load_dir(self, folder: Path) -> dict[str, dict]:
        """Outcome of every file of ``folder``, loaded in name order."""
        return {p.name: self.load(p) for p in sorted(folder.iterdir())}

    def load(self, path: Path) -> dict:
        """Outcome of one file."""
        data = path.read_bytes()
        if self.source == "core_banking":
            recs = split_records(data, "latin-1")
            reason = core_file_reason(recs)
            if reason:
                return {"rejected": reason}
            details = [(r[1:21].strip(), r, core_record_reason(r)) for r in recs if r[0] == "D"]
        else:
            reason, rows = cards_file_reason(path.name, data)
            if reason:
                return {"rejected": reason}
            details = [(r[0], tuple(r), cards_record_reason(r)) for r in rows]
        return self._records(path.name, details)

    def _records(self, name: str, details: list[tuple[str, object, str | None]]) -> dict:
        status: list[str | None] = [reason for _, _, reason in details]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (tid, _, reason) in enumerate(details):
            if reason is None:
                groups[tid].append(i)
        for idx in groups.values():
            raws = {details[i][1] for i in idx}
            if len(raws) == 1:
                for i in idx[1:]:
                    status[i] = "DUPLICATE_TXN_ID"
            else:
                for i in idx:
                    status[i] = "DUPLICATE_TXN_ID"
        accepted = new_rows = 0
        for i, (tid, raw, _) in enumerate(details):
            if status[i] is not None:
                continue
            if tid in self.silver:
                if self.silver[tid] == raw:
                    status[i] = "NOOP"
                    accepted += 1
                else:
                    status[i] = "DUPLICATE_TXN_ID"
            else:
                self.silver[tid] = raw
                status[i] = "NEW"
                accepted += 1
                new_rows += 1
        for (tid, _, _), s in zip(details, status, strict=True):
            self.records.append((tid, name, str(s)))
        quarantined = Counter(s for s in status if s not in ("NEW", "NOOP"))
        return {
            "records_in": len(details),
            "quarantined": dict(quarantined),
            "accepted": accepted,
            "new_rows": new_rows,
        }


def assert_manifest_matches(manifest: gen.Manifest, folder: Path) -> ReferenceLoader:
    """The generator's expected outcome equals the reference loader's, file by file."""
    loader = ReferenceLoader(manifest.source)
    actual = loader.load_dir(folder)
    expected = manifest.by_name()
    assert sorted(actual) == sorted(expected)
    for name, got in actual.items():
        want = expected[name]
        if "rejected" in got:
            assert want.rejected == got["rejected"], name
            assert (want.accepted, want.new_rows, want.quarantined) == (0, 0, {}), name
            continue
        assert want.rejected is None, name
        assert want.records_in == got["records_in"], name
        assert want.quarantined == got["quarantined"], name
        assert want.accepted == got["accepted"], name
        assert want.new_rows == got["new_rows"], name
        assert want.accepted + sum(want.quarantined.values()) == want.records_in, name
    assert manifest.silver_rows == len(loader.silver)
    return loader


def read_all(folder: Path) -> dict[str, bytes]:
    """Every file of a folder by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


@pytest.mark.parametrize("source", gen.SOURCES)
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, source: str) -> None:
    kw = dict(source=source, start=START, days=3, records_per_day=40, record_errors=True,
              file_errors=("all",))  # fmt: skip
    m1 = gen.generate(tmp_path / "a", seed=7, **kw)
    m2 = gen.generate(tmp_path / "b", seed=7, **kw)
    gen.generate(tmp_path / "c", seed=8, **kw)
    a, b, c = read_all(tmp_path / "a"), read_all(tmp_path / "b"), read_all(tmp_path / "c")
    assert a == b
    assert m1.to_json() == m2.to_json()
    assert sorted(a) == sorted(c)
    assert all(a[n] != c[n] for n in a if a[n])  # every non-empty file differs


@pytest.mark.parametrize("source", gen.SOURCES)
def test_longer_run_starts_with_the_same_files(tmp_path: Path, source: str) -> None:
    kw = dict(source=source, start=START, records_per_day=30, record_errors=True)
    short = gen.generate(tmp_path / "short", days=3, **kw)
    long = gen.generate(tmp_path / "long", days=6, **kw)
    s, long_files = read_all(tmp_path / "short"), read_all(tmp_path / "long")
    assert all(long_files[n] == data for n, data in s.items())
    assert long.files[:3] == short.files


def test_core_banking_layout_and_control_totals(tmp_path: Path) -> None:
    m = gen.generate(tmp_path, source="core_banking", start=START, days=4, records_per_day=60,
                     record_errors=True, files_per_day=2)  # fmt: skip
    assert len(m.files) == 8
    texts = []
    for path in sorted(tmp_path.iterdir()):
        assert re.fullmatch(r"CORE_TXN_[0-9]{8}_[0-9]{6}\.dat", path.name)
        data = path.read_bytes()
        assert data.endswith(b"\n") and b"\r" not in data
        recs = split_records(data, "latin-1")
        assert all(len(r) == 200 for r in recs)
        header, details, trailer = recs[0], recs[1:-1], recs[-1]
        assert header[0] == "H" and header[1:9] == "COREBNK "
        assert header[9:17] == path.name[9:17] and header[17:23] == path.name[18:24]
        assert parse_ymd(header[23:31]) is not None and DIGITS.fullmatch(header[23:37])
        assert header[37:].strip() == ""
        assert all(r[0] == "D" for r in details)
        assert trailer[0] == "T" and trailer[44:].strip() == ""
        amounts = [decode_zoned(r[59:74]) for r in details]
        assert None not in amounts
        assert all(decode_zoned(r[120:135]) is not None for r in details)
        assert int(trailer[1:10]) == len(details)
        assert int(trailer[10:27]) == -sum(a for a in amounts if a < 0)
        assert int(trailer[27:44]) == sum(a for a in amounts if a > 0)
        assert all(r[161:].strip() == "" for r in details)
        texts.append(data.decode("latin-1"))
    body = "".join(texts)
    # overpunch letters, plain trailing digits and negative punches all occur
    lasts = {r[73] for t in texts for r in t.split("\n") if r.startswith("D")}
    assert lasts & set(POS_PUNCH) and lasts & set("0123456789") and lasts & set(NEG_PUNCH)
    assert all(ch in body for ch in "éßü")
    assert_manifest_matches(m, tmp_path)


def test_core_banking_good_records_are_plausible(tmp_path: Path) -> None:
    m = gen.generate(tmp_path, source="core_banking", start=START, days=5, records_per_day=200,
                     accounts=50)  # fmt: skip
    assert m.total_quarantined == 0 and m.silver_rows == 1000
    recs = [r for p in sorted(tmp_path.iterdir()) for r in split_records(p.read_bytes(), "latin-1")]
    details = [r for r in recs if r[0] == "D"]
    assert all(core_record_reason(r) is None for r in details)
    ids = [r[1:21] for r in details]
    assert len(set(ids)) == len(ids)
    accounts = {r[21:33] for r in details}
    assert len(accounts) <= 50 and any(a.startswith("0") for a in accounts)
    codes = Counter(r[55:59].strip() for r in details)
    assert set(codes) == CORE_CODES
    assert {r[77:80] for r in details} == {"BRN", "ATM", "WEB", "MOB", "POS", "BAT"}
    assert len({r[74:77] for r in details}) > 3
    seen: set[str] = set()
    for r in details:
        if r[55:59] == "REV ":
            assert r[135:155].strip() in seen  # reverses an earlier transaction
        seen.add(r[1:21])
    by_file: dict[str, list[str]] = defaultdict(list)
    for p in sorted(tmp_path.iterdir()):
        bd = p.name[9:17]
        for r in split_records(p.read_bytes(), "latin-1")[1:-1]:
            by_file[bd].append(r[33:41])
    for bd, posting in by_file.items():
        share_same_day = posting.count(bd) / len(posting)
        assert share_same_day > 0.8
        prev = {x for x in posting if x != bd}
        assert all(parse_ymd(x) is not None and x < bd for x in prev)


def test_cards_layout_and_trailer(tmp_path: Path) -> None:
    m = gen.generate(tmp_path, source="cards", start=START, days=4, records_per_day=80,
                     record_errors=True)  # fmt: skip
    merchants: set[str] = set()
    raw_lines: list[str] = []
    amounts: list[int] = []
    for path in sorted(tmp_path.iterdir()):
        assert re.fullmatch(r"CARDS_[0-9]{8}\.csv", path.name)
        data = path.read_bytes()
        text = data.decode("utf-8")
        assert text.endswith("\n") and "\r" not in text
        lines = text.split("\n")[:-1]
        assert lines[0] == CARDS_HEADER
        rows = list(csv.reader(lines[1:-1], delimiter="|", quotechar='"', strict=True))
        assert all(len(r) == 9 for r in rows)
        assert all(re.fullmatch(r"-?[0-9]+\.[0-9]{2}", r[4]) for r in rows)
        assert all(len(r[6]) <= 60 and re.fullmatch(r"[A-Z0-9]{6}", r[8]) for r in rows)
        trl = lines[-1].split("|")
        assert trl[0] == "TRL" and int(trl[1]) == len(rows)
        net = sum(cents_of(r[4]) for r in rows)
        assert cents_of(trl[2]) == net
        assert trl[2] == ("-" if net < 0 else "") + f"{abs(net) // 100}.{abs(net) % 100:02d}"
        bd = path.name[6:14]
        good = [r for r in rows if cards_record_reason(r) is None]
        assert all(card_date(r[2]) <= parse_ymd(bd) for r in good)  # re-sends are older
        merchants.update(r[6] for r in rows)
        raw_lines.extend(lines[1:-1])
        amounts.extend(cents_of(r[4]) for r in rows)
    assert any("|" in x for x in merchants) and any('"' in x for x in merchants)
    assert "Müller & Söhne" in merchants and "株式会社テスト" in merchants
    assert any('|"' in x for x in raw_lines) and any('""' in x for x in raw_lines)
    assert sum(a < 0 for a in amounts) > sum(a > 0 for a in amounts) > 0
    assert_manifest_matches(m, tmp_path)


@pytest.mark.parametrize("source", gen.SOURCES)
def test_every_file_error_is_present(tmp_path: Path, source: str) -> None:
    m = gen.generate(tmp_path, source=source, start=START, days=3, records_per_day=30,
                     file_errors=("all",))  # fmt: skip
    rejected = {f.rejected: f for f in m.files if f.rejected}
    assert sorted(rejected) == sorted(gen.FILE_ERRORS[source])
    assert len(m.rejected_files) == len(gen.FILE_ERRORS[source])
    normal = {f.business_date for f in m.files if not f.rejected}
    for reason, f in rejected.items():
        assert (tmp_path / f.name).exists()
        if reason == "EMPTY_FILE":
            assert (tmp_path / f.name).stat().st_size == 0
        if source == "cards":
            if reason == "BAD_FILE_NAME":
                assert f.business_date is None
            else:
                assert f.business_date is not None and f.business_date > max(normal)
                assert f.name == f"CARDS_{f.business_date:%Y%m%d}.csv"
        else:
            assert f.business_date == START and int(f.name[18:24]) >= 90
    assert_manifest_matches(m, tmp_path)


def test_file_error_subset(tmp_path: Path) -> None:
    m = gen.generate(tmp_path, source="core_banking", start=START, days=2,
                     file_errors=["BAD_HEADER", "CONTROL_TOTAL_MISMATCH"])  # fmt: skip
    assert m.rejected_by_reason() == {"BAD_HEADER": 1, "CONTROL_TOTAL_MISMATCH": 1}
    assert_manifest_matches(m, tmp_path)
    with pytest.raises(ValueError):
        gen.generate(tmp_path / "x", source="cards", start=START, days=1,
                     file_errors=["BAD_HEADER"])  # fmt: skip


@pytest.mark.parametrize("source", gen.SOURCES)
def test_every_record_error_in_every_file(tmp_path: Path, source: str) -> None:
    m = gen.generate(tmp_path, source=source, start=START, days=4, records_per_day=20,
                     record_errors=True)  # fmt: skip
    for f in m.files:
        assert set(f.quarantined) == set(gen.RECORD_ERRORS[source]), f.name
    assert set(m.quarantined_by_reason()) == set(gen.RECORD_ERRORS[source])
    # identical re-sends of earlier files: accepted but adding no row
    assert all(f.accepted > f.new_rows for f in m.files[1:])
    assert m.files[0].accepted == m.files[0].new_rows
    assert_manifest_matches(m, tmp_path)


@pytest.mark.parametrize("source", gen.SOURCES)
def test_error_rate_scales_and_manifest_matches(tmp_path: Path, source: str) -> None:
    m = gen.generate(tmp_path, source=source, start=START, days=6, records_per_day=500,
                     record_errors=True, error_rate=0.05, file_errors=("all",),
                     files_per_day=3 if source == "core_banking" else 1)  # fmt: skip
    loaded = [f for f in m.files if not f.rejected]
    for f in loaded:
        share = sum(f.quarantined.values()) / f.records_in
        assert 0.02 < share < 0.10, (f.name, share)
    assert_manifest_matches(m, tmp_path)


@pytest.mark.parametrize("source", gen.SOURCES)
def test_txn_ids_unique_except_injected_duplicates(tmp_path: Path, source: str) -> None:
    clean = gen.generate(tmp_path / "clean", source=source, start=START, days=4,
                         records_per_day=100, file_errors=("all",))  # fmt: skip
    loader = assert_manifest_matches(clean, tmp_path / "clean")
    ids = [tid for tid, _, _ in loader.records]
    assert ids and len(ids) == len(set(ids))

    dirty = gen.generate(tmp_path / "dirty", source=source, start=START, days=4,
                         records_per_day=100, record_errors=True)  # fmt: skip
    loader = assert_manifest_matches(dirty, tmp_path / "dirty")
    by_id: dict[str, list[str]] = defaultdict(list)
    for tid, _, status in loader.records:
        by_id[tid].append(status)
    # records failing a rule before the duplicate check never share an id
    early = {"NEW", "NOOP", "DUPLICATE_TXN_ID"}
    for tid, statuses in by_id.items():
        if any(s not in early for s in statuses):
            assert len(statuses) == 1, tid
    repeats = sum(len(s) - 1 for s in by_id.values())
    dup = dirty.quarantined_by_reason()["DUPLICATE_TXN_ID"]
    resends = dirty.total_accepted - dirty.silver_rows
    assert 0 < repeats <= dup + resends
    # each repeated id has at most one row in silver
    assert all(s.count("NEW") <= 1 for s in by_id.values())


def test_manifest_json_round_trip(tmp_path: Path) -> None:
    m = gen.generate(tmp_path, source="cards", start=START, days=2, records_per_day=25,
                     record_errors=True, file_errors=("all",))  # fmt: skip
    data = json.loads(m.to_json())
    assert data["source"] == "cards"
    assert set(data["summary"]) >= {
        "files", "rejected_files", "total_records", "total_accepted",
        "total_quarantined", "silver_rows", "quarantined_by_reason",
    }  # fmt: skip
    assert data["summary"]["silver_rows"] == m.silver_rows
    first = data["files"][0]
    assert set(first) == {"name", "business_date", "records_in", "rejected", "quarantined",
                          "accepted", "new_rows"}  # fmt: skip
    assert gen.Manifest.from_json(m.to_json()) == m
    assert m.total_records == sum(f.records_in for f in m.files)
    assert m.total_accepted + m.total_quarantined == sum(
        f.records_in for f in m.files if not f.rejected
    )


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError):
        gen.generate("/nonexistent", source="nope", start=START, days=1)
    with pytest.raises(ValueError):
        gen.generate("/nonexistent", source="cards", start=START, days=0)
    with pytest.raises(ValueError):
        gen.generate("/nonexistent", source="cards", start=START, days=1, files_per_day=2)
    with pytest.raises(ValueError):
        gen.generate("/nonexistent", source="core_banking", start=START, days=1,
                     file_errors=["NOPE"])  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerlake generate")
    gen.add_arguments(parser)
    return parser


def test_cli_run_writes_files_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    manifest_path = tmp_path / "m" / "manifest.json"
    args = _parser().parse_args([
        "--source", "core_banking", "--out", str(out), "--days", "3",
        "--start", "2024-02-27", "--records-per-day", "25", "--seed", "3",
        "--inject-errors", "--file-errors", "all", "--manifest", str(manifest_path),
    ])  # fmt: skip
    assert gen.run(args) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "11 core_banking files" in printed[0]
    manifest = gen.Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
    assert len(manifest.files) == 11 and len(list(out.iterdir())) == 11
    assert_manifest_matches(manifest, out)

    args = _parser().parse_args([
        "--source", "cards", "--out", str(tmp_path / "y"), "--years", "1", "--records-per-day", "2",
        "--file-errors", "BAD_MCC",
    ])  # fmt: skip
    assert gen.run(args) == 2
    assert "BAD_MCC" in capsys.readouterr().err

    args = _parser().parse_args(["--source", "cards", "--out", str(tmp_path / "z"), "--years",
                                 "1", "--records-per-day", "2"])  # fmt: skip
    assert gen.run(args) == 0
    assert len(list((tmp_path / "z").iterdir())) == 365


@pytest.mark.parametrize(
    "argv",
    [
        ["--source", "events", "--out", "x"],
        ["--source", "cards", "--out", "x", "--days", "0"],
        ["--source", "cards", "--out", "x", "--accounts", "-1"],
        ["--source", "cards", "--out", "x", "--days", "2", "--years", "1"],
        ["--source", "cards", "--out", "x", "--start", "2024-13-01"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err


@pytest.mark.parametrize("source", gen.SOURCES)
def test_reference_loader_agrees_with_contract_samples(source: str, samples: Path) -> None:
    expected = json.loads((samples / f"expected_{source}.json").read_text(encoding="utf-8"))
    loader = ReferenceLoader(source)
    got = loader.load_dir(samples / source)
    assert sorted(got) == sorted(expected["ledger"])
    for name, outcome in got.items():
        want = expected["ledger"][name]
        if want["status"] == "REJECTED":
            assert outcome.get("rejected") == want["reason"], name
            continue
        quarantined = {
            key.split("|")[1]: n for key, n in expected["quarantine"].items()
            if key.startswith(name + "|")
        }  # fmt: skip
        assert outcome["records_in"] == want["records_in"], name
        assert outcome["accepted"] == want["records_accepted"], name
        assert outcome["quarantined"] == quarantined, name
    assert set(loader.silver) == set(expected["rows"])
