"""``ledgerlake serve-statements [--host 127.0.0.1] [--port 8080]``: account statements over HTTP until stopped.

One process, no JVM: the tiers' snapshots are read with delta-rs and advanced every
``--refresh-seconds``; decoded data files are kept in a memory budget (``--cache-mb``).
See ``ledgerlake.query.service`` for the API and docs/statements.md for operating it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args
from ledgerlake.console import configure_logging, exit_statuses, fail
from ledgerlake.query.reader import LakeNotFound, StatementReader, watch
from ledgerlake.query.serve_sql import is_loopback, port_free
from ledgerlake.query.service import (
    API_KEYS_ENV,
    ApiKeys,
    KeyFileError,
    RateLimiter,
    ServiceSettings,
    create_app,
    key_line,
    new_api_key,
)
from ledgerlake.serving import window_for

log = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake serve-statements",
        description="Serve account statements over HTTP (JSON, or CSV with Accept: text/csv) from both tiers, "
                    "read-only, until stopped with Ctrl-C or SIGTERM: GET /accounts/ACCOUNT/statement?"
                    "from=YYYY-MM-DD&to=YYYY-MM-DD, GET /health, API docs at /docs.",
        epilog=f"API keys: --new-api-key NAME prints a key and its line for --api-keys-file (or {API_KEYS_ENV}); "
               "any --host other than loopback requires keys.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"interface to listen on (default {DEFAULT_HOST}; any other address requires API keys)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--api-keys-file", metavar="PATH",
                        help=f"key holders, one 'NAME:sha256$HEX' line each (default: the {API_KEYS_ENV} variable, "
                             "same lines); with keys, every statement needs X-API-Key or Authorization: Bearer")
    parser.add_argument("--new-api-key", metavar="NAME",
                        help="print a new random key and NAME's line for the key file, and exit")
    parser.add_argument("--rate-limit", type=float, default=10.0, metavar="PER_SECOND",
                        help="statements a second per key (per client address without keys), bursts of twice "
                             "that; more are answered 429 (default 10; 0: no limit)")
    parser.add_argument("--refresh-seconds", type=float, default=0.5,
                        help="how often the tables are checked for new commits (default 0.5)")
    parser.add_argument("--cache-mb", type=int, default=1024,
                        help="memory for decoded data files, least recently used out first (default 1024; 0: "
                             "every statement reads the files)")
    parser.add_argument("--warm-months", type=int, default=13,
                        help="months of each tier, newest first, decoded into the cache at start (default 13)")
    add_common_arguments(parser)
    return parser


@exit_statuses("serve-statements")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.new_api_key:
        if ":" in args.new_api_key or "," in args.new_api_key or not args.new_api_key.strip():
            return fail("serve-statements", "a key's name is not empty and holds no ':' or ','")
        key = new_api_key()
        print(f"key (give it to the client; it is not stored): {key}")
        print(f"line for --api-keys-file or {API_KEYS_ENV}: {key_line(args.new_api_key, key)}")
        return 0
    try:
        config = config_from_args(args)
        keys = ApiKeys.load(args.api_keys_file)
    except (ConfigError, KeyFileError) as exc:
        return fail("serve-statements", str(exc))
    if not is_loopback(args.host) and not keys:
        return fail("serve-statements", f"--host {args.host} lets other machines connect: configure API keys "
                                        f"(--api-keys-file or {API_KEYS_ENV}; see --new-api-key)")
    if not 1 <= args.port <= 65535:
        return fail("serve-statements", f"--port must be 1-65535, got {args.port}")
    if args.refresh_seconds <= 0 or args.cache_mb < 0 or args.rate_limit < 0:
        return fail("serve-statements", "--refresh-seconds must be > 0, --cache-mb and --rate-limit >= 0")
    if not port_free(args.host, args.port):
        return fail("serve-statements", f"{args.host}:{args.port} is already in use (or not an address of this "
                                        "machine)")
    configure_logging(config.log_level)
    try:
        reader = StatementReader(config.warehouse, cache_bytes=args.cache_mb * 2**20).open()
    except LakeNotFound as exc:
        return fail("serve-statements", str(exc))
    reader.cache.start()
    reader.warm(args.warm_months)
    stop = threading.Event()
    watch(reader, args.refresh_seconds, stop)

    import uvicorn

    settings = ServiceSettings(
        reader=reader, today=config.current_date,
        window_start=lambda today: window_for(today, config.serving_months).first_day,
        keys=keys, limiter=RateLimiter(args.rate_limit), refresh_seconds=args.refresh_seconds)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=args.host, port=args.port,
                                           log_level="warning", access_log=False, server_header=False))
    versions = ", ".join(f"{name} v{snap.version}" for name, snap in reader.snapshots().items())
    access = f"{len(keys.by_digest)} API key(s)" if keys else "no API keys (loopback only)"

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"ledgerlake serve-statements: serving lake {config.warehouse} ({versions}) on "
                  f"http://{args.host}:{args.port}; docs at /docs; {access}; Ctrl-C stops", flush=True)

    def shut_down(*_: object) -> None:
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        # uvicorn shuts down on these, then raises them again for the handler in place before: this one
        signal.signal(sig, shut_down)
    threading.Thread(target=announce, daemon=True).start()
    server.run()
    stop.set()
    reader.cache.close()
    print("ledgerlake serve-statements: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
