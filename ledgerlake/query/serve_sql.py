"""``ledgerlake serve-sql [--port 10000]``: the lake's tables over JDBC/ODBC until stopped.

Runs Spark's Thrift server (the HiveServer2 protocol; its jars ship with PySpark)
inside a ledgerlake Spark session that registered the lake's tables by location,
so every JDBC session resolves ``silver.*``, ``serving.*`` and ``ops.*`` by name,
with no shared metastore. Delta checks the table's log at every query, so each
query sees the latest commit, also while the stream writes from another process.

Hive opens JDBC sessions with its own class loader (the JVM's system class path),
so the Delta jars are put on the driver's class path, not only on Spark's.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from ledgerlake.config import ConfigError, LakeConfig, add_common_arguments, config_from_args
from ledgerlake.console import configure_logging, exit_statuses, fail
from ledgerlake.extensions import spark_home

log = logging.getLogger(__name__)

DEFAULT_PORT = 10000
DEFAULT_HOST = "127.0.0.1"
CUSTOM_AUTHENTICATION_CLASS = "hive.server2.custom.authentication.class"
def server_config(config: LakeConfig, host: str, port: int, classpath: list[str], allow_writes: bool = False,
                  password_file: str | None = None) -> LakeConfig:
    """The session settings of the server: Thrift endpoint, Delta and the extensions on the driver class path.

    Every JDBC session starts from these settings: read-only (unless ``allow_writes``), each
    statement logged with its user, and with ``password_file`` a password check at login.
    """
    from ledgerlake.extensions import PASSWORD_AUTHENTICATOR, PASSWORD_FILE, QUERY_LOG, read_only_conf

    conf = {
        "hive.server2.thrift.bind.host": host,
        "hive.server2.thrift.port": str(port),
        "hive.server2.transport.mode": "binary",
        # one Spark session per JDBC connection: SET and temporary views stay private to it
        "spark.sql.hive.thriftServer.singleSession": "false",
        # the table names come from this process's catalog, registered by location (no Derby metastore)
        "spark.sql.catalogImplementation": "in-memory",
        "spark.extraListeners": QUERY_LOG,
        # A query may use a table snapshot up to 30 s old while a newer one is read in the background.
        # Without it, every query after a commit first rebuilds the snapshot (log replay, then the
        # statistics for file skipping): with the stream committing every few seconds that made a
        # one-account lookup take 2-3 s instead of under one (docs/statements.md, "JDBC lookups").
        "spark.databricks.delta.stalenessLimit": "30s",
        # the tables' logs are small (thousands of files): one task rebuilds them faster than several
        "spark.databricks.delta.snapshotPartitions": "1",
    }
    if not allow_writes:
        conf.update(read_only_conf(config.warehouse))
    if password_file:
        conf.update({"hive.server2.authentication": "CUSTOM", CUSTOM_AUTHENTICATION_CLASS: PASSWORD_AUTHENTICATOR,
                     PASSWORD_FILE: password_file})
    conf.update(config.spark_conf)
    if classpath:
        user_path = config.spark_conf.get("spark.driver.extraClassPath")
        conf["spark.driver.extraClassPath"] = os.pathsep.join([p for p in [user_path, *classpath] if p])
    return replace(config, spark_conf=conf)


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port yet."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def connect_hint(host: str, port: int) -> str:
    """How to connect, printed when the server is up."""
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    url = f"jdbc:hive2://{shown}:{port}/default"
    return (f"JDBC URL: {url}\n"
            f"beeline:  SPARK_HOME={spark_home()} {spark_home() / 'bin' / 'beeline'} -u {url} -n $USER")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake serve-sql",
        description="Serve the lake's tables (silver.*, serving.*, ops.*) over JDBC/ODBC with the Spark Thrift "
                    "Server (HiveServer2 protocol) until stopped with Ctrl-C or SIGTERM.",
        epilog="connect: beeline -u jdbc:hive2://localhost:10000/default -n USER [-p PASSWORD]. Queries only "
               "unless --allow-writes; another --host than loopback requires --password-file; TLS: see "
               "docs/operations.md.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"interface to listen on (default {DEFAULT_HOST}; any other address requires "
                             "--password-file)")
    parser.add_argument("--password-file", metavar="PATH",
                        help="users and hashed passwords, one 'user:hash' line each (see --hash-password); "
                             "clients then log in with -n USER -p PASSWORD")
    parser.add_argument("--hash-password", metavar="USER",
                        help="read a password from the terminal (or stdin), print USER's line for "
                             "--password-file, and exit")
    parser.add_argument("--allow-writes", action="store_true",
                        help="accept statements that change the lake (default: queries only: SELECT, WITH, "
                             "SHOW, DESCRIBE, EXPLAIN)")
    add_common_arguments(parser)
    return parser


PBKDF2_ITERATIONS = 600_000


def password_line(user: str, password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A --password-file line: salted PBKDF2-SHA256, as ``ledgerlake.spark.PasswordFileAuthenticator`` checks it."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    encode = base64.b64encode
    return f"{user}:pbkdf2_sha256${iterations}${encode(salt).decode()}${encode(digest).decode()}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@exit_statuses("serve-sql")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.hash_password:
        if ":" in args.hash_password or not args.hash_password.strip():
            return fail("serve-sql", "a user name is not empty and holds no ':'")
        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if not password:
            return fail("serve-sql", "the password is empty")
        print(password_line(args.hash_password, password))
        return 0
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return fail("serve-sql", str(exc))
    if not is_loopback(args.host) and not args.password_file:
        return fail("serve-sql", f"--host {args.host} lets other machines connect: pass --password-file "
                                 "(users and hashed passwords, see --hash-password)")
    if args.password_file and not os.access(args.password_file, os.R_OK):
        return fail("serve-sql", f"--password-file {args.password_file} is not a readable file")
    if not 1 <= args.port <= 65535:
        return fail("serve-sql", f"--port must be 1-65535, got {args.port}")
    if not port_free(args.host, args.port):
        return fail("serve-sql", f"{args.host}:{args.port} is already in use (or not an address of this machine)")
    configure_logging(config.log_level)

    from ledgerlake.extensions import PASSWORD_AUTHENTICATOR, READ_ONLY, check_read_only
    from ledgerlake.lake import open_lake
    from ledgerlake.session import build_session, delta_jars, extensions_classpath, under_spark_submit

    classpath: list[str] = []
    if not under_spark_submit():
        classpath = [*delta_jars(config), str(extensions_classpath())]
    password_file = str(Path(args.password_file).resolve()) if args.password_file else None
    spark = build_session(server_config(config, args.host, args.port, classpath, args.allow_writes, password_file),
                          "ledgerlake-serve-sql")
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - the Thrift server has no Python API
    try:
        jvm.java.lang.ClassLoader.getSystemClassLoader().loadClass("org.apache.spark.sql.delta.catalog.DeltaCatalog")
    except Exception:  # noqa: BLE001 - py4j wraps the ClassNotFoundException
        spark.stop()
        return fail("serve-sql", "Delta is not on the driver class path; under spark-submit pass "
                                 "--driver-class-path with the delta-spark and delta-storage jars")
    if password_file:
        # Hive builds the password check from a HiveConf of its own, which reads the JVM's system properties.
        jvm.java.lang.System.setProperty(CUSTOM_AUTHENTICATION_CLASS, PASSWORD_AUTHENTICATOR)
    spark.conf.set(READ_ONLY, "false")        # this session registers the tables; the clients' sessions cannot
    lake = open_lake(spark, config.warehouse)
    if not args.allow_writes:
        check_read_only(spark.newSession())
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithSparkSession(
        spark._jsparkSession, False)  # noqa: SLF001
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from warehouse.tables import ALL_TABLES

    tables = ", ".join(name for name in ALL_TABLES if lake.exists(name))
    print(f"ledgerlake serve-sql: serving lake {lake.root} on {args.host}:{args.port} "
          f"(tables: {tables}); Ctrl-C stops", flush=True)
    mode = "read-write" if args.allow_writes else "read-only"
    login = f"password file {password_file}" if password_file else "no authentication (loopback only)"
    print(f"ledgerlake serve-sql: {mode}, {login}", flush=True)
    print(connect_hint(args.host, args.port), flush=True)
    started = time.monotonic()
    while not stop.wait(1.0):
        pass
    log.info("stopping after %.0fs", time.monotonic() - started)
    server.stop()
    spark.stop()
    print("ledgerlake serve-sql: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
