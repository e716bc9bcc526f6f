"""Physical formats: turn whole files into one row per physical record, in Spark SQL."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.patterns import whole

UTF8, LATIN1 = "UTF-8", "ISO-8859-1"
REPLACEMENT = "\ufffd"     # what Spark's make_valid_utf8 puts in place of each invalid byte sequence


def valid_utf8(content: Column) -> Column:
    """True when the bytes are valid UTF-8 (checked without decoding, so it never raises)."""
    return F.is_valid_utf8(content.cast("string"))


def utf8_error(content: Column) -> Column:
    """Where bytes stop being valid UTF-8, as ``line N, byte offset B`` (both of the first invalid
    byte; offset from 0); NULL for valid UTF-8."""
    text = content.cast("string")
    before = F.substring_index(F.make_valid_utf8(text), REPLACEMENT, 1)   # the valid bytes before the first bad one
    where = F.format_string("line %d, byte offset %d", F.size(F.split(before, "\n", -1)), F.octet_length(before))
    return F.when(~valid_utf8(content), where)


def file_lines(encoding: str) -> Column:
    """A file's ``content`` decoded as one array of lines, LF separated.

    The LF after the last line is optional and an empty file has no lines. A CR before an
    LF stays on its line: ``without_cr`` removes it. Decoding never fails: a file that
    should be UTF-8 but is not is decoded as ISO-8859-1 (one character per byte), and the
    caller decides what that means (``utf8_error``, ``utf8_lines``).
    """
    content = F.col("content")
    if encoding == UTF8:
        text = F.when(valid_utf8(content), content.cast("string")).otherwise(F.decode(content, LATIN1))
    else:
        text = F.decode(content, encoding)
    body = F.when(text.endswith("\n"), _drop_last_char(text)).otherwise(text)
    # A one-character split pattern takes Java's non-regex fast path.
    return F.when(body == "", F.array().cast("array<string>")).otherwise(F.split(body, "\n", -1))


def utf8_line(line: Column, file_is_utf8: Column) -> tuple[Column, Column]:
    """A line of ``file_lines(UTF8)``, and whether it is valid UTF-8.

    Lines of a valid file are returned as they are. A line of an invalid file (decoded as
    ISO-8859-1) is turned back into its bytes: valid UTF-8 is decoded as such, anything
    else keeps its ISO-8859-1 rendering (every byte readable, nothing lost).
    """
    data = F.encode(line, LATIN1)
    line_is_utf8 = file_is_utf8 | valid_utf8(data)
    return F.when(file_is_utf8, line).when(line_is_utf8, data.cast("string")).otherwise(line), line_is_utf8


def without_cr(name: str) -> Column:
    """The line in column ``name`` without a trailing CR (CRLF files)."""
    line = F.col(name)
    return F.when(line.endswith("\r"), _drop_last_char(line)).otherwise(line)


def _drop_last_char(text: Column) -> Column:
    return F.substr(text, F.lit(1), F.length(text) - 1)


def split_records(encoding: str) -> Callable[[DataFrame], DataFrame]:
    """files(file_sha, content) -> records(file_sha, record_no, raw), LF or CRLF separated.

    The terminator after the last record is optional. An empty file keeps one row with a
    NULL record, so every file read shows up in the statistics (``count(1)``) while
    ``count(raw)`` counts its records. UTF-8 files also get ``utf8_error`` on every record
    (``line N, byte offset B`` of a file that is not valid UTF-8, else NULL) for the file checks.
    """
    kept = ["utf8_error"] if encoding == UTF8 else []

    def _split(files: DataFrame) -> DataFrame:
        errors = [utf8_error(F.col("content")).alias("utf8_error")] if kept else []
        # Per file first: an expression on ``content`` beside the generator would run once per line.
        per_file = files.select("file_sha", *errors, file_lines(encoding).alias("_lines"))
        return (per_file.select("file_sha", *kept, F.posexplode_outer("_lines").alias("pos", "raw"))
                .select("file_sha", (F.col("pos") + 1).cast("bigint").alias("record_no"),
                        without_cr("raw").alias("raw"), *kept))

    return _split


def fixed_fields(fields: dict[str, tuple[int, int]]) -> Callable[[DataFrame], DataFrame]:
    """Add one column per fixed-width field: name -> (1-based start, length)."""

    def _fields(records: DataFrame) -> DataFrame:
        return records.withColumns(
            {name: F.substring("raw", start, length) for name, (start, length) in fields.items()}
        )

    return _fields


# One RFC-4180 field with '|' as the delimiter: quoted (with "" escapes) or plain without quotes.
_FIELD = r'("(?:[^"]|"")*"|[^|"]*)'


def delimited_pattern(n_fields: int) -> str:
    """Java regex matching a whole line of exactly n_fields delimited fields."""
    return whole(r"\|".join([_FIELD] * n_fields))


def delimited_fields(names: list[str]) -> Callable[[DataFrame], DataFrame]:
    """Add one column per delimited field (unquoted), plus ``well_formed`` for the whole line."""
    pattern = delimited_pattern(len(names))

    def _fields(records: DataFrame) -> DataFrame:
        raw_fields = {f"_q{i}": F.regexp_extract("raw", pattern, i + 1) for i in range(len(names))}
        values = {
            name: F.when(F.col(f"_q{i}").startswith('"'),
                         F.regexp_replace(F.expr(f"substr(_q{i}, 2, length(_q{i}) - 2)"), '""', '"'))
            .otherwise(F.col(f"_q{i}"))
            for i, name in enumerate(names)
        }
        return (records.withColumn("well_formed", F.col("raw").rlike(pattern))
                .withColumns(raw_fields).withColumns(values).drop(*raw_fields))

    return _fields
