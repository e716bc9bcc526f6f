"""Pure DataFrame -> DataFrame transforms: parsing, validation, mapping, dedupe (no I/O, no actions)."""
