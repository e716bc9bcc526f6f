"""Physical formats: turn whole files into one row per physical record, in Spark SQL."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def file_lines(encoding: str) -> Column:
    """A file's ``content`` decoded as one array of lines, LF separated.

    The LF after the last line is optional and an empty file has no lines. A CR before an
    LF stays on its line: ``without_cr`` removes it.
    """
    text = F.decode(F.col("content"), encoding)
    body = F.when(text.endswith("\n"), _drop_last_char(text)).otherwise(text)
    # A one-character split pattern takes Java's non-regex fast path.
    return F.when(body == "", F.array().cast("array<string>")).otherwise(F.split(body, "\n", -1))


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
    ``count(raw)`` counts its records.
    """

    def _split(files: DataFrame) -> DataFrame:
        return files.select("file_sha", F.posexplode_outer(file_lines(encoding)).alias("pos", "raw")).select(
            "file_sha", (F.col("pos") + 1).cast("bigint").alias("record_no"), without_cr("raw").alias("raw")
        )

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
    return "^" + r"\|".join([_FIELD] * n_fields) + "$"


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
