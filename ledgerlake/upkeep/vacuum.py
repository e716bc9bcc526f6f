"""VACUUM: delete files no table version within the retention still references."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ledgerlake.console import render_table, timed
from ledgerlake.lake import Lake, hadoop_fs
from warehouse.tables import ALL_TABLES

log = logging.getLogger("ledgerlake.maintain")

DEFAULT_RETAIN_HOURS = 168
MIN_RETAIN_HOURS = 168      # readers, running streams and time travel need a week of files


@dataclass
class VacuumResult:
    """Files deleted per table."""

    retain_hours: int
    lines: list[tuple[str, int]] = field(default_factory=list)

    def render(self) -> str:
        return (f"vacuum (retention {self.retain_hours} h):\n"
                + render_table(["table", "files deleted"], self.lines))


def vacuum(lake: Lake, retain_hours: int = DEFAULT_RETAIN_HOURS) -> VacuumResult:
    """VACUUM every table of the lake with the given retention."""
    result = VacuumResult(retain_hours)
    for name in ALL_TABLES:
        if not lake.exists(name):
            continue
        with timed(log, f"vacuum {name}"):
            before = _data_files(lake, name)
            lake.delta(name).vacuum(float(retain_hours))
            deleted = len(before - _data_files(lake, name))
        log.info("vacuum %s: %d file(s) deleted", name, deleted)
        result.lines.append((name, deleted))
    return result


def _data_files(lake: Lake, name: str) -> set[str]:
    """Data files under a table's directory (the Delta log excluded), via Hadoop's file system."""
    fs, root = hadoop_fs(lake.spark, lake.path(name))
    found: set[str] = set()
    files = fs.listFiles(root, True)
    while files.hasNext():
        path = files.next().getPath().toString()
        if "/_delta_log/" not in path:
            found.add(path)
    return found
