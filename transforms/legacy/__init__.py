"""Legacy batch feeds, each declared once as a SourceSpec."""

from __future__ import annotations

from transforms.legacy import cards, core_banking, core_banking_ebcdic
from transforms.legacy.spec import SourceSpec

SOURCES: dict[str, SourceSpec] = {spec.name: spec for spec in (core_banking.SPEC, core_banking_ebcdic.SPEC, cards.SPEC)}


class UnknownSourceError(ValueError):
    """A source id that no SourceSpec declares."""


def get_source(name: str) -> SourceSpec:
    """The declaration of a batch feed, or an error naming the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSourceError(
            f"unknown source {name!r}; known batch sources: {', '.join(sorted(SOURCES))}"
        ) from None
