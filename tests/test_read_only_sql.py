"""``ledgerlake sql`` answers queries only, unless started with --allow-writes (the same check serves serve-sql)."""

from __future__ import annotations

import pytest

REFUSED = [
    ("DELETE FROM silver.transactions", "Delete"),
    ("UPDATE silver.transactions SET amount = 0", "Update"),
    ("INSERT INTO ops.quarantine SELECT * FROM ops.quarantine", "changes the lake"),
    ("MERGE INTO silver.transactions t USING silver.transactions s ON t.txn_id = s.txn_id "
     "WHEN MATCHED THEN DELETE", "changes the lake"),
    ("DROP TABLE silver.transactions", "changes the lake"),
    ("CREATE TABLE silver.other (a INT) USING delta", "changes the lake"),
    ("RESTORE TABLE silver.transactions TO VERSION AS OF 0", "Restore"),
    ("VACUUM silver.transactions RETAIN 0 HOURS", "Vacuum"),
    ("OPTIMIZE silver.transactions", "Optimize"),
    ("CACHE TABLE silver.transactions", "changes the lake"),
    ("CREATE TEMPORARY VIEW v AS SELECT 1 AS a", "changes the lake"),
    ("ADD JAR /tmp/anything.jar", "AddJars"),
    ("SET spark.databricks.delta.retentionDurationCheck.enabled = false",
     "SET spark.databricks.delta.retentionDurationCheck.enabled is not allowed"),
    ("SET spark.ledgerlake.sql.readOnly = false", "SET spark.ledgerlake.sql.readOnly is not allowed"),
    ("SET spark.sql.runSQLOnFiles = true", "is not allowed"),
    ("SELECT * FROM text.`/etc/passwd`", "outside the lake"),
    ("SELECT reflect('java.lang.System', 'getProperty', 'user.home')", "reflection"),
    ("SELECT count(*) FROM silver.transactions WHERE txn_id IN "
     "(SELECT java_method('java.lang.System', 'getProperty', 'user.home'))", "reflection"),
]

ALLOWED = [
    "SELECT count(*) AS n FROM silver.transactions",
    "WITH t AS (SELECT 1 AS a) SELECT a FROM t",
    "SHOW TABLES IN silver",
    "DESCRIBE TABLE silver.transactions",
    "DESCRIBE HISTORY silver.transactions",
    "EXPLAIN SELECT * FROM serving.transactions_recent",
    "SET spark.sql.session.timeZone = UTC",
    "SET",
]


@pytest.fixture(scope="module")
def lake_root(new_lake, tmp_path_factory):
    return new_lake(tmp_path_factory.mktemp("read_only") / "lake").root


@pytest.mark.parametrize("statement,why", REFUSED, ids=[s.split()[0] + f"-{i}" for i, (s, _) in enumerate(REFUSED)])
def test_statements_that_are_not_queries_are_refused(lake_root, ledgerlake_cli, spark, statement, why):
    from ledgerlake.lake import Lake

    before = Lake(spark, lake_root).version("silver.transactions")
    proc = ledgerlake_cli("sql", statement, "--warehouse", lake_root)
    assert proc.returncode == 2, proc.stdout
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("ledgerlake sql: error: read-only lake:") and why in line
    assert Lake(spark, lake_root).version("silver.transactions") == before
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled") == "true"


@pytest.mark.parametrize("statement", ALLOWED)
def test_queries_are_answered(lake_root, ledgerlake_cli, statement):
    proc = ledgerlake_cli("sql", statement, "--warehouse", lake_root)
    assert proc.returncode == 0, proc.stderr


def test_a_path_inside_the_lake_may_be_read(lake_root, ledgerlake_cli):
    proc = ledgerlake_cli("sql", f"SELECT count(*) AS n FROM delta.`{lake_root}/silver/transactions`",
                          "--warehouse", lake_root, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["n", "0"]


def test_allow_writes_accepts_changes(new_lake, tmp_path, ledgerlake_cli):
    root = new_lake(tmp_path / "lake").root
    proc = ledgerlake_cli("sql", "DELETE FROM ops.quarantine WHERE record_no < 0", "--warehouse", root,
                          "--allow-writes")
    assert proc.returncode == 0, proc.stderr
