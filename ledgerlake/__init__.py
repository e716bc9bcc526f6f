"""ledgerlake: legacy bank batch files and real-time events into a validated Delta lake."""

from __future__ import annotations

__version__ = "0.1.0"
