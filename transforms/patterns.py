"""Regular expressions of the rules, anchored so that they match whole values only.

Java's ``$`` also matches just before a final line terminator (``\\n``, ``\\r\\n``, ``\\r``,
``\\u0085``, ``\\u2028``, ``\\u2029``): ``'CB…\\n' RLIKE '^CB[0-9]{18}$'`` is true. Every
pattern of a rule is therefore written without anchors and anchored here, with ``\\z``
(the very end of the input) at its end.
"""

from __future__ import annotations


def whole(pattern: str) -> str:
    """The Java regular expression matching a whole value against ``pattern`` (no anchors in it)."""
    return rf"^(?:{pattern})\z"


def matches(expr: str, pattern: str) -> str:
    """SQL: ``expr`` is, as a whole, a match of ``pattern`` (NULL for NULL).

    The regular expression goes into a SQL string literal, where a backslash is an escape:
    it is doubled here, so ``pattern`` itself is written as Java reads it (no single quote).
    """
    literal = whole(pattern).replace("\\", "\\\\")
    return f"({expr} RLIKE '{literal}')"
