"""``events``: the real-time core-banking feed (JSON Lines), as pure transforms.

The chain a micro-batch applies (``jobs/stream.py``), each step a DataFrame -> DataFrame:

    landing files -> split_lines -> parse_events -> (bad lines: to_quarantine)
                                                  -> dedupe_events -> latest_per_txn -> plan_changes
                                                  -> to_silver_rows / to_state_rows / parity

Every rule of ``contracts/events.md`` is a Spark SQL expression over the line parsed
as a VARIANT, so a line that breaks one gets ``reason = BAD_EVENT`` and a precise
``reason_detail`` (the first failing rule, in the order of the contract's field table).
The transaction codes and currencies are those of the ``core_banking`` feed.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from transforms import publish
from transforms.legacy.core_banking import TXN_CODES
from transforms.legacy.formats import LATIN1, UTF8, file_lines, utf8_line, valid_utf8, without_cr
from transforms.legacy.spec import CURRENCIES, sql_in
from transforms.patterns import matches

SOURCE_SYSTEM = "events"
BAD_EVENT = "BAD_EVENT"
POSTED, CORRECTED, CANCELLED = "TXN_POSTED", "TXN_CORRECTED", "TXN_CANCELLED"
EVENT_TYPES = (POSTED, CORRECTED, CANCELLED)

# What a micro-batch does with the newest event of a txn_id (see plan_changes).
UPSERT = "UPSERT"      # the transaction exists with the event's fields
CANCEL = "CANCEL"      # the transaction is voided: remove its row, leave a tombstone
STALE = "STALE"        # not newer than what the lake already holds: nothing changes
BATCH = "BATCH"        # a batch file already loaded this txn_id: nothing changes, parity records the difference

# State of a streamed txn_id in ops.stream_state.
LIVE, TOMBSTONE, BATCH_OWNED = "LIVE", "CANCELLED", "BATCH"

# Whole-value patterns (anchored by transforms.patterns).
TXN_ID_FORMAT = "CB[0-9]{18}"
ACCOUNT_FORMAT = "[0-9]{12}"
DATE_FORMAT = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
TIMESTAMP_FORMAT = ("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?"
                    "(Z|[+-][0-9]{2}:?[0-9]{2})")
DECIMAL_FORMAT = "-?[0-9]{1,16}([.][0-9]{1,2})?"       # at most 2 decimals; fits DECIMAL(18,2)

# Fields every event carries, and those TXN_POSTED / TXN_CORRECTED add (contract order).
COMMON_FIELDS = ("event_id", "event_type", "txn_id", "sequence")
POSTING_FIELDS = ("account_no", "posted_at", "value_date", "txn_code", "amount", "currency", "channel",
                  "description", "balance_after", "reversal_of")
ALL_FIELDS = (*COMMON_FIELDS, *POSTING_FIELDS, "emitted_at")

EVENT_COLUMNS = [
    "event_id", "event_type", "txn_id", "sequence", "account_id", "posted_at", "posting_date", "value_date",
    "txn_code", "amount", "currency", "channel", "description", "balance_after", "reversal_of", "emitted_at",
]


def _json(name: str) -> str:
    return f"variant_get(_v, '$.{name}')"


def _type(name: str) -> str:
    return f"_t_{name}"


def _text(name: str) -> str:
    return f"_s_{name}"


def _shown(name: str) -> str:
    """SQL: the field's JSON text, cut to 40 characters, for a detail message."""
    return f"substr(to_json({_json(name)}), 1, 40)"


def _first_failing(rules: list[tuple[str, str]]) -> str:
    """SQL CASE: the detail of the first rule whose condition is not TRUE, else NULL."""
    return "CASE " + " ".join(f"WHEN NOT coalesce({valid}, FALSE) THEN {detail}" for valid, detail in rules) + " END"


def _present(name: str) -> str:
    return f"({_type(name)} IS NOT NULL AND {_type(name)} != 'VOID')"


def _string_rule(name: str, valid: str, what: str) -> list[tuple[str, str]]:
    """Rules for a required string field: present, a JSON string, then its format."""
    return [
        (_present(name), f"'missing field {name}'"),
        (f"{_type(name)} = 'STRING'", f"format_string('{name} must be a string, got %s', {_shown(name)})"),
        (valid, f"format_string('{name} %s {what}', {_shown(name)})"),
    ]


def _optional_string_rule(name: str, valid: str, what: str) -> list[tuple[str, str]]:
    """Rules for a field that may be absent or null, else a string in the given format."""
    return [
        (f"NOT {_present(name)} OR {_type(name)} = 'STRING'",
         f"format_string('{name} must be a string or null, got %s', {_shown(name)})"),
        (f"NOT {_present(name)} OR {valid}", f"format_string('{name} %s {what}', {_shown(name)})"),
    ]


def _only_for_postings(rules: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A TXN_CANCELLED carries only the common fields: its other fields are not checked."""
    return [(f"(_s_event_type = '{CANCELLED}' OR {valid})", detail) for valid, detail in rules]


RULES: list[tuple[str, str]] = [
    ("utf8", f"'not valid UTF-8 (raw_record shows its bytes as {LATIN1} characters)'"),
    ("_v IS NOT NULL", "'not valid JSON'"),
    ("schema_of_variant(_v) LIKE 'OBJECT<%'", "format_string('not a JSON object but %s', schema_of_variant(_v))"),
    *_string_rule("event_id", "length(trim(_s_event_id)) > 0", "is empty"),
    *_string_rule("event_type", f"_s_event_type IN {sql_in(EVENT_TYPES)}", "is not one of " + ", ".join(EVENT_TYPES)),
    *_string_rule("txn_id", matches("_s_txn_id", TXN_ID_FORMAT), "is not CB followed by 18 digits"),
    (_present("sequence"), "'missing field sequence'"),
    ("_sequence IS NOT NULL AND _sequence >= 1",
     "format_string('sequence must be an integer >= 1, got %s', " + _shown("sequence") + ")"),
    *_only_for_postings([
        *_string_rule("account_no", matches("_s_account_no", ACCOUNT_FORMAT), "is not 12 digits"),
        *_string_rule("posted_at", "_posted_at IS NOT NULL",
                      "is not an ISO-8601 timestamp with Z or an offset"),
        *_string_rule("value_date", "_value_date IS NOT NULL", "is not a date YYYY-MM-DD"),
        *_string_rule("txn_code", f"_s_txn_code IN {sql_in(TXN_CODES)}", "is not a known transaction code"),
        *_string_rule("amount", "_amount IS NOT NULL", "is not a decimal with at most 2 decimals"),
        *_string_rule("currency", f"_s_currency IN {sql_in(CURRENCIES)}", "is not a supported currency"),
        (_present("channel"), "'missing field channel'"),
        (f"{_type('channel')} = 'STRING'", f"format_string('channel must be a string, got %s', {_shown('channel')})"),
        (_present("description"), "'missing field description'"),
        (f"{_type('description')} = 'STRING'",
         f"format_string('description must be a string, got %s', {_shown('description')})"),
        *_optional_string_rule("balance_after", "_balance_after IS NOT NULL",
                               "is not a decimal with at most 2 decimals"),
        (f"NOT {_present('reversal_of')} OR {_type('reversal_of')} = 'STRING'",
         f"format_string('reversal_of must be a string or null, got %s', {_shown('reversal_of')})"),
        ("CASE WHEN _s_txn_code = 'REV' THEN coalesce(trim(_s_reversal_of), '') != '' "
         "ELSE coalesce(trim(_s_reversal_of), '') = '' END",
         "CASE WHEN _s_txn_code = 'REV' THEN 'reversal_of must be set for a REV transaction' "
         "ELSE format_string('reversal_of %s is set but txn_code is %s, not REV', "
         + _shown("reversal_of") + ", _s_txn_code) END"),
    ]),
    *_string_rule("emitted_at", "_emitted_at IS NOT NULL", "is not an ISO-8601 timestamp with Z or an offset"),
]


def _timestamp(text: str) -> str:
    """SQL: an ISO-8601 text with Z or an offset as a TIMESTAMP (an instant), NULL when not one."""
    return f"CASE WHEN {matches(text, TIMESTAMP_FORMAT)} THEN try_cast({text} AS TIMESTAMP) END"


def _decimal(text: str) -> str:
    return f"CASE WHEN {matches(text, DECIMAL_FORMAT)} THEN try_cast({text} AS DECIMAL(18,2)) END"


def split_lines(files: DataFrame) -> DataFrame:
    """Landing files (``content`` bytes, UTF-8) -> one row per line: ``record_no`` (1-based) and ``raw``.

    Lines end with LF or CRLF; the terminator after the last line is optional. Every
    other column of ``files`` (file name, landing time, ...) is kept on each line, and
    ``source_sha256`` fingerprints the file the line came from. Any bytes split: ``utf8``
    is false for a line that is not valid UTF-8, whose ``raw`` then shows each byte as
    its ISO-8859-1 character (a compressed or binary file gives such lines, never an error).
    """
    keep = [c for c in files.columns if c != "content"]
    # Hash and split once per file, before the explode: an expression on ``content`` next to the
    # generator would be evaluated (and the file's bytes carried) once per line.
    per_file = files.select(*keep, F.sha2("content", 256).alias("source_sha256"),
                            valid_utf8(F.col("content")).alias("_file_utf8"), file_lines(UTF8).alias("_lines"))
    exploded = per_file.select(*keep, "source_sha256", "_file_utf8", F.posexplode("_lines").alias("_pos", "_line"))
    raw, utf8 = utf8_line(without_cr("_line"), F.col("_file_utf8"))
    return exploded.select(*keep, "source_sha256", (F.col("_pos") + 1).cast("bigint").alias("record_no"),
                           raw.alias("raw"), utf8.alias("utf8"))


def parse_events(lines: DataFrame) -> DataFrame:
    """Lines (``raw``) -> the event's fields typed, plus ``reason`` (BAD_EVENT or NULL) and ``reason_detail``.

    A field must have its JSON type: strings for every field but ``sequence`` (an
    integer); ``balance_after`` and ``reversal_of`` may be null or absent. Unknown
    fields are ignored. ``posting_date`` is the UTC date of ``posted_at``.
    """
    keep = lines.columns
    parsed = lines.withColumn("_v", F.expr("try_parse_json(raw)"))
    parsed = parsed.withColumns({_type(f): F.expr(f"schema_of_variant({_json(f)})") for f in ALL_FIELDS})
    parsed = parsed.withColumns({
        _text(f): F.expr(f"CASE WHEN {_type(f)} = 'STRING' THEN variant_get({_json(f)}, '$', 'string') END")
        for f in ALL_FIELDS
    })
    parsed = parsed.withColumns({
        # an integer: a JSON number without a fraction that fits a BIGINT
        "_sequence": F.expr(f"CASE WHEN {_type('sequence')} = 'BIGINT' OR {_type('sequence')} LIKE 'DECIMAL(%,0)' "
                            f"THEN try_variant_get({_json('sequence')}, '$', 'bigint') END"),
        "_posted_at": F.expr(_timestamp("_s_posted_at")),
        "_emitted_at": F.expr(_timestamp("_s_emitted_at")),
        "_value_date": F.expr(f"CASE WHEN {matches('_s_value_date', DATE_FORMAT)} "
                              "THEN try_to_date(_s_value_date, 'yyyy-MM-dd') END"),
        "_amount": F.expr(_decimal("_s_amount")),
        "_balance_after": F.expr(_decimal("_s_balance_after")),
    })
    parsed = parsed.withColumn("reason_detail", F.expr(_first_failing(RULES)))
    valid = F.col("reason_detail").isNull()
    posting = valid & (F.col("_s_event_type") != CANCELLED)

    def field(expr: str | F.Column, only_postings: bool = True) -> F.Column:
        column = F.expr(expr) if isinstance(expr, str) else expr
        return F.when(posting if only_postings else valid, column)

    return parsed.select(
        *keep,
        F.when(~valid, F.lit(BAD_EVENT)).alias("reason"),
        "reason_detail",
        field("_s_event_id", False).alias("event_id"),
        field("_s_event_type", False).alias("event_type"),
        # kept on bad lines too when it is a string, so quarantined events can be found by txn_id
        F.col("_s_txn_id").alias("txn_id"),
        field("_sequence", False).alias("sequence"),
        field("_s_account_no").alias("account_id"),
        field("_posted_at").alias("posted_at"),
        # the UTC calendar date of the instant, whatever the session time zone
        field("date_from_unix_date(CAST(floor(unix_seconds(_posted_at) / 86400) AS INT))").alias("posting_date"),
        field("_value_date").alias("value_date"),
        field("_s_txn_code").alias("txn_code"),
        field("_amount").alias("amount"),
        field("_s_currency").alias("currency"),
        field("_s_channel").alias("channel"),
        field("trim(_s_description)").alias("description"),
        field("_balance_after").alias("balance_after"),
        field("nullif(trim(_s_reversal_of), '')").alias("reversal_of"),
        field("_emitted_at", False).alias("emitted_at"),
    )


def valid_events(parsed: DataFrame) -> DataFrame:
    """Events that passed every rule."""
    return parsed.where(F.col("reason").isNull())


def bad_events(parsed: DataFrame) -> DataFrame:
    """Lines that broke a rule (reason BAD_EVENT)."""
    return parsed.where(F.col("reason").isNotNull())


def to_quarantine(load_id: str) -> Callable[[DataFrame], DataFrame]:
    """Bad lines -> ops.quarantine rows: the landing file, the line number and the raw line."""
    return publish.to_quarantine_rows(SOURCE_SYSTEM, load_id)


def dedupe_events(events: DataFrame) -> DataFrame:
    """Drop repeated event_ids: a repeat is the same event again; the first landed copy is kept."""
    first = Window.partitionBy("event_id").orderBy("source_file", "record_no")
    return events.withColumn("_copy", F.row_number().over(first)).where("_copy = 1").drop("_copy")


def latest_per_txn(events: DataFrame) -> DataFrame:
    """The event with the highest sequence per txn_id (on a tie of sequence, the first landed)."""
    newest = Window.partitionBy("txn_id").orderBy(F.col("sequence").desc(), "source_file", "record_no")
    return events.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")


def with_posting_month(events: DataFrame) -> DataFrame:
    """Adds ``posting_month`` (YYYY-MM of posting_date; NULL for cancellations)."""
    return events.withColumn("posting_month", F.date_format("posting_date", "yyyy-MM"))


def current_state(log: DataFrame) -> DataFrame:
    """ops.stream_state (an append-only log of versions) -> one row per txn_id as it stands now.

    ``sequence``: the highest recorded; ``status``/``posting_month``: those of that version,
    except that BATCH ownership, once recorded, sticks (with the batch row's month).
    """
    newest = F.max_by(F.struct("status", "posting_month"), F.struct("sequence", "batch_id", "updated_at"))
    batch_month = F.max_by(F.when(F.col("status") == BATCH_OWNED, F.col("posting_month")),
                           F.when(F.col("status") == BATCH_OWNED, F.col("updated_at")))
    owned = F.max(F.col("status") == BATCH_OWNED)
    return log.groupBy("txn_id").agg(
        F.max("sequence").alias("sequence"),
        F.when(owned, F.lit(BATCH_OWNED)).otherwise(newest["status"]).alias("status"),
        F.when(owned, batch_month).otherwise(newest["posting_month"]).alias("posting_month"),
    )


def plan_changes(state: DataFrame, batch_rows: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Newest event per txn_id -> what to do with it (``action``) given the lake's state.

    ``state``: the current state (see current_state) of these txn_ids: txn_id, sequence, status,
    posting_month.
    ``batch_rows``: silver rows of these txn_ids loaded from a batch file (txn_id, posting_month).

    * not newer than the stored sequence            -> STALE (repeats, late older versions, and
      anything older than a tombstone: a cancelled transaction stays cancelled)
    * loaded from a batch file (the book of record)  -> BATCH (no change; parity)
    * TXN_CANCELLED                                   -> CANCEL (delete where it lives, tombstone)
    * otherwise                                       -> UPSERT (insert, or replace a lower sequence,
      moving the row when the posting month changed)

    Adds ``action``, ``old_month`` (where the streamed row lives now, if any), ``batch_month``
    and ``stored_sequence``.
    """

    def _plan(latest: DataFrame) -> DataFrame:
        s = state.select("txn_id", F.col("sequence").alias("stored_sequence"), F.col("status").alias("stored_status"),
                         F.col("posting_month").alias("stored_month"))
        b = (batch_rows.groupBy("txn_id").agg(F.min("posting_month").alias("batch_month")))
        joined = latest.join(s, "txn_id", "left").join(b, "txn_id", "left")
        action = (
            F.when(F.col("stored_sequence").isNotNull() & (F.col("sequence") <= F.col("stored_sequence")), F.lit(STALE))
            .when((F.col("stored_status") == BATCH_OWNED) | F.col("batch_month").isNotNull(), F.lit(BATCH))
            .when(F.col("event_type") == CANCELLED, F.lit(CANCEL))
            .otherwise(F.lit(UPSERT))
        )
        return joined.withColumns({
            "action": action,
            "old_month": F.when(F.col("stored_status") == LIVE, F.col("stored_month")),
            "batch_month": F.coalesce("batch_month", F.when(F.col("stored_status") == BATCH_OWNED,
                                                            F.col("stored_month"))),
        }).drop("stored_month")

    return _plan


def to_silver_rows(load_id: str, keep: tuple[str, ...] = ()) -> Callable[[DataFrame], DataFrame]:
    """Events -> rows with silver.transactions' columns (source_system ``events``, lineage of the line).

    ``keep``: further columns of the input to carry along after silver's.
    """

    def _rows(events: DataFrame) -> DataFrame:
        return events.withColumns({
            "source_system": F.lit(SOURCE_SYSTEM),
            "record_hash": F.lit(None).cast("bigint"),
            "event_sequence": F.col("sequence"),
        }).transform(publish.to_silver_rows(load_id, keep))

    return _rows


def to_state_rows(batch_id: int) -> Callable[[DataFrame], DataFrame]:
    """Planned changes (UPSERT, CANCEL, BATCH) -> the ops.stream_state versions this micro-batch appends."""

    def _rows(plan: DataFrame) -> DataFrame:
        action = F.col("action")
        return plan.where(action.isin(UPSERT, CANCEL, BATCH)).select(
            "txn_id",
            "sequence",
            F.when(action == UPSERT, F.lit(LIVE)).when(action == CANCEL, F.lit(TOMBSTONE))
            .otherwise(F.lit(BATCH_OWNED)).alias("status"),
            F.when(action == UPSERT, F.col("posting_month")).when(action == BATCH, F.col("batch_month"))
            .alias("posting_month"),
            "event_id",
            "event_type",
            F.lit(batch_id).cast("bigint").alias("batch_id"),
            F.current_timestamp().alias("updated_at"),
        )

    return _rows
