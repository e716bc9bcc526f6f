"""Rule patterns match whole values: no line terminator passes at the end (Java's ``$`` would let it)."""

from __future__ import annotations

import pytest

from transforms.patterns import matches, whole

TERMINATORS = ["\n", "\r", "\r\n", "\u0085", "\u2028", "\u2029"]


@pytest.mark.parametrize("end", TERMINATORS, ids=[repr(t) for t in TERMINATORS])
def test_a_trailing_line_terminator_fails_the_pattern(spark, end):
    value = "CB" + "1" * 18
    row = spark.createDataFrame([(value, value + end)], "good STRING, bad STRING").selectExpr(
        f"{matches('good', 'CB[0-9]{18}')} AS good", f"{matches('bad', 'CB[0-9]{18}')} AS bad",
        "bad RLIKE '^CB[0-9]{18}$' AS dollar").first()
    assert row["good"] is True and row["bad"] is False
    assert row["dollar"] is True       # what an anchor with $ lets through


def test_patterns_with_backslashes_and_alternatives_are_kept_whole(spark):
    pipe = r"a\|b"
    row = spark.createDataFrame([("a|b", "x")], "v STRING, w STRING").selectExpr(
        f"{matches('v', pipe)} AS piped", f"{matches('w', 'x|y')} AS alt", f"{matches('w', 'xx|x')} AS alt2",
        f"{matches('v', 'a|b')} AS not_whole").first()
    assert row.asDict() == {"piped": True, "alt": True, "alt2": True, "not_whole": False}
    assert whole("x|y") == r"^(?:x|y)\z"
