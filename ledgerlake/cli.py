"""The ``ledgerlake`` command: one entry point, one module per sub-command."""

from __future__ import annotations

import importlib
import sys

# sub-command -> (module with main(argv), one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "backfill": ("jobs.backfill", "load a legacy feed's batch files into silver.transactions"),
    "dq": ("expectations.dq", "data-quality suites, reports (ops.dq_results) and serving audit"),
    "generate": ("ledgerlake.samples.legacy", "write contract-conformant sample legacy files"),
    "sql": ("ledgerlake.query.sql", "run Spark SQL against the lake's tables"),
    "reconcile": ("jobs.reconcile", "check the lake against control totals, the ledger and the stream"),
    "statement": ("ledgerlake.query.statement", "print one account's transactions in a date range, oldest first"),
    "serve-sql": ("ledgerlake.query.serve_sql", "serve the lake's tables over JDBC/ODBC (Spark Thrift Server)"),
    "serve-statements": ("ledgerlake.query.serve_statements", "serve account statements over HTTP (JSON, CSV)"),
    "stream": ("jobs.stream", "apply the real-time events landing zone to silver and the serving tier"),
    "maintain": ("jobs.maintain", "serving-tier roll-off, OPTIMIZE/Z-ORDER and VACUUM of the lake's tables"),
    "cluster": ("ledgerlake.cluster", "start, stop or show a Spark standalone cluster on this machine (loopback)"),
}

USAGE = """usage: ledgerlake COMMAND [options]   (ledgerlake COMMAND --help for a command's options)

Legacy bank batch files and real-time events into a validated, month-partitioned Delta lake.

commands:
{commands}

Every command takes --warehouse PATH (or LEDGERLAKE_WAREHOUSE) to choose the lake;
the default lake lives in the repository's warehouse/lake folder.
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        listing = "\n".join(f"  {name:<16} {desc}" for name, (_, desc) in COMMANDS.items())
        print(USAGE.format(commands=listing))
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from ledgerlake import __version__

        print(f"ledgerlake {__version__}")
        return 0
    command = args[0]
    if command not in COMMANDS:
        print(f"ledgerlake: error: unknown command {command!r}; choose from {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
