"""The one SparkSession factory: local[*] by default, Delta configured, every setting overridable."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ledgerlake import objectstore
from ledgerlake.cluster import cluster_conf
from ledgerlake.config import LakeConfig
from ledgerlake.extensions import READ_ONLY_EXTENSION, cache_dir, extensions_jar, spark_home

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# The Delta jars Spark resolves from Maven Central (cached in ~/.ivy2 after the first run).
# Pinned with the delta-spark wheel: Maven artifacts carry the Spark minor version.
DELTA_VERSION = "4.4.0"
SCALA_VERSION = "2.13"
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"


def extensions_classpath() -> Path:
    """The jar of the project's Spark extensions, built against this PySpark's jars on first use."""
    return extensions_jar(spark_home() / "jars", delta_jars())


def delta_package() -> str:
    """Maven coordinate of the Delta jar matching the installed PySpark."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_{SCALA_VERSION}:{DELTA_VERSION}"


_VERSIONED_JAR = re.compile(r"^(?:[^_]+_)?(?P<artifact>.+?)-\d[^-]*\.jar$")


def _artifact(jar_name: str) -> str:
    """``io.delta_delta-storage-4.4.0.jar`` and ``delta-storage-4.4.0.jar`` -> ``delta-storage``."""
    match = _VERSIONED_JAR.match(jar_name)
    return match.group("artifact") if match else jar_name


def hadoop_aws_package() -> str:
    """Maven coordinate of Hadoop's S3 connector matching the Hadoop jars PySpark ships (with it: the AWS SDK)."""
    shipped = sorted((spark_home() / "jars").glob("hadoop-client-api-*.jar"))
    if not shipped:
        raise RuntimeError(f"no hadoop-client-api jar in {spark_home() / 'jars'}: is PySpark installed whole?")
    version = shipped[-1].name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    return f"org.apache.hadoop:hadoop-aws:{version}"


def delta_jars(config: LakeConfig | None = None) -> list[str]:
    """Local files of the Delta package's jars that PySpark does not ship already."""
    return package_jars(delta_package(), config)


def s3_jars(config: LakeConfig | None = None) -> list[str]:
    """Local files of Hadoop's S3 connector and the AWS SDK bundle (~700 MB, downloaded once)."""
    return package_jars(hadoop_aws_package(), config)


def package_jars(package: str, config: LakeConfig | None = None) -> list[str]:
    """Local files of a Maven package's jars that PySpark does not ship already.

    Spark's own resolver (Ivy, ``spark.jars.repositories`` and friends from the config) resolves
    the package once; the list is remembered in the cache folder, so a job's JVM starts with plain
    ``spark.jars`` instead of resolving the dependency tree again (a few seconds each time). It is
    resolved again when a listed file is gone.
    """
    record = cache_dir() / f"jars-{package.replace(':', '_')}.txt"
    if record.is_file():
        jars = record.read_text().split()
        if jars and all(Path(j).is_file() for j in jars):
            return jars
    log.info("resolving %s", package)
    jars = _resolve_package(package, config.spark_conf if config else {})
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    partial.write_text("\n".join(jars) + "\n")
    os.replace(partial, record)
    return jars


def _resolve_package(package: str, settings: dict[str, str]) -> list[str]:
    """Start a bare JVM (no SparkContext) that resolves ``package`` as a session would; its jars."""
    from pyspark import SparkConf
    from pyspark.java_gateway import launch_gateway

    # spark.jars emptied: the list holds the package's jars, not spark-defaults.conf's
    conf = SparkConf(loadDefaults=False).set("spark.jars.packages", package).set("spark.jars", "")
    for key in ("spark.jars.ivy", "spark.jars.repositories", "spark.jars.ivySettings"):
        if key in settings:
            conf.set(key, settings[key])
    gateway = launch_gateway(conf)
    try:
        jars = str(gateway.jvm.org.apache.spark.SparkConf().get("spark.jars", ""))
    finally:
        gateway.shutdown()
        gateway.proc.stdin.close()
        gateway.proc.wait(timeout=60)
    shipped = {_artifact(p.name) for p in (spark_home() / "jars").glob("*.jar")}
    paths = [j.removeprefix("file://").removeprefix("file:") for j in jars.split(",") if j.strip()]
    return [p for p in paths if _artifact(Path(p).name) not in shipped]


ROW_GROUP_BYTES = 1 << 20


def base_spark_conf(config: LakeConfig) -> dict[str, str]:
    """Settings every ledgerlake session uses; user --conf values override them."""
    cores = os.cpu_count() or 2
    conf = {
        # Delta, and the read-only switch of the SQL commands (inactive unless they turn it on)
        "spark.sql.extensions": f"{DELTA_EXTENSION},{READ_ONLY_EXTENSION}",
        "spark.jars": str(extensions_classpath()),
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Transactions are UTC by contract; never let the machine's zone leak in.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(max(4, cores * 2)),
        # Delta rebuilds a table's file list from its log with a shuffle into this many partitions
        # (default 50) before every read, pin and commit: 50 tasks cost seconds each time on a few
        # cores, while a log of many thousand files fits a partition per core.
        "spark.databricks.delta.snapshotPartitions": str(max(2, cores)),
        "spark.sql.adaptive.enabled": "true",
        # HotSpot never JIT-compiles a method of more than 8,000 bytes of bytecode. The generated
        # loop of a legacy feed's parse (dozens of fields, amounts, dates and rules in one stage) is
        # larger and ran interpreted; above this size Spark generates code per operator instead,
        # whose smaller methods are compiled (the backfill's parse pass: 23 s -> 20 s, 13 s warm).
        "spark.sql.codegen.hugeMethodLimit": "8000",
        # Parquet row groups of ~1 MB (default 128 MB): a month's file is sorted by account, so a lookup's
        # filter on account_id skips all row groups but one or two by their statistics (JDBC statements,
        # the statement reader's scans) instead of decoding the whole file; full scans hardly notice.
        "spark.hadoop.parquet.block.size": str(ROW_GROUP_BYTES),
        "spark.sql.warehouse.dir": f"{config.warehouse}/_catalog",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.log.structuredLogging.enabled": "false",
        "spark.log.level": "WARN",
        "spark.driver.memory": os.environ.get("LEDGERLAKE_DRIVER_MEMORY", "4g"),
        "spark.databricks.delta.retentionDurationCheck.enabled": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "64",
        # VACUUM lists a table's directories with a Spark job of this many tasks (Spark's default:
        # 10,000, a minute of task scheduling on a few cores even for an empty table)
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(max(4, cores * 2)),
        # decode() of mainframe code pages (cp037) for the EBCDIC feed
        "spark.sql.legacy.javaCharsets": "true",
        # Spark 4.2.0 leaves :named and ? markers unbound in its default substitution mode; the
        # constants-only mode binds them (statements bind the account id and dates as parameters)
        "spark.sql.legacy.parameterSubstitution.constantsOnly": "true",
        # Delta's log on S3 with conditional PUTs (several writers at once); s3:// read as s3a://
        **objectstore.SPARK_CONF,
    }
    user_jars = config.spark_conf.get("spark.jars")
    conf.update(config.spark_conf)
    if user_jars:
        conf["spark.jars"] = f"{user_jars},{extensions_classpath()}"
    return conf


def under_spark_submit() -> bool:
    """True when spark-submit launched this Python process (the JVM already exists)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(config: LakeConfig, app_name: str) -> SparkSession:
    """Start (or join) the SparkSession for a job, with Delta available."""
    from pyspark.sql import SparkSession

    if objectstore.is_s3(config.warehouse):
        objectstore.check_prefix(config.warehouse)     # one clear line, before a JVM starts
    builder = SparkSession.builder.appName(app_name)
    conf = base_spark_conf(config)
    for key, value in cluster_conf(_master(config)).items():
        conf.setdefault(key, value)
    if under_spark_submit():
        # spark-submit put the jars on the class path and chose --master already (spark-defaults.conf,
        # written by the set-up); only session-level settings apply.
        for key in ("spark.driver.memory", "spark.jars.packages", "spark.jars"):
            conf.pop(key, None)
        if config.master:
            builder = builder.master(config.master)
    else:
        builder = builder.master(config.master or "local[*]")
        conf["spark.jars"] = ",".join([*delta_jars(config), conf["spark.jars"]])
        if config.object_store:
            # On the class path of the driver and of executors on this machine, not shipped as spark.jars:
            # the AWS SDK bundle is ~700 MB, copied to every executor otherwise. Cluster nodes elsewhere
            # need the same files at the same paths (docs/operations.md, "Object storage").
            for key in ("spark.driver.extraClassPath", "spark.executor.extraClassPath"):
                conf[key] = os.pathsep.join([p for p in [conf.get(key), *s3_jars(config)] if p])
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.get("spark.log.level", "WARN"))
    _check_delta(spark)
    if config.object_store:
        objectstore.configure(spark)
    log.debug("Spark %s session %s on %s", spark.version, app_name, spark.sparkContext.master)
    return spark


def _master(config: LakeConfig) -> str | None:
    """The master the session will use: the config's, else (under spark-submit) the one spark-submit was given."""
    if config.master or not under_spark_submit():
        return config.master
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # noqa: SLF001 - joins the JVM spark-submit started
    return SparkConf().get("spark.master", None)


class DeltaUnavailableError(RuntimeError):
    """The Delta jars are not on the Spark classpath."""


def _check_delta(spark: SparkSession) -> None:
    from py4j.java_gateway import JavaClass

    jvm = spark.sparkContext._jvm  # noqa: SLF001 - the way delta-spark itself reaches the JVM
    if not isinstance(jvm.io.delta.tables.DeltaTable, JavaClass):
        raise DeltaUnavailableError(
            "Delta Lake classes are not on the Spark classpath; run spark-submit with "
            f"--packages {delta_package()} (the Makefile's set-up writes the resolved jars into "
            "spark-defaults.conf of the project's virtualenv)"
        )


# JVM options of a short job on little data (a daily load). Such a job is all warm-up: C1 alone
# compiles in time to pay (C2 compiles too late for a job of seconds, on cores the job needs), the
# serial collector has no threads to start, and the JVM loads some 15,000 classes from the jars of
# Spark, Delta and Hadoop whose bytecode verification costs ~4 s; it is skipped for them as for the
# JDK's own classes (the jars come from the set-up's Maven resolution). C1 alone reserves 48 MB for
# compiled code, which a few dozen Spark jobs fill: the default 240 MB instead.
QUICK_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseSerialGC "
                     "-XX:+UnlockDiagnosticVMOptions -XX:-BytecodeVerificationRemote")


def small_commit_conf(auto_compact: bool = True) -> dict[str, str]:
    """Session settings for many small commits (the stream, maintenance, a daily load); --conf overrides them.

    Delta rebuilds a table's snapshot after every commit, with 50 shuffle partitions by
    default: on a few cores that dominates a micro-batch, so match it to the machine.
    A micro-batch's cost is mostly fixed (planning, generated code, Delta's log), not per event.
    """
    partitions = str(min(8, max(2, os.cpu_count() or 2)))
    return {
        "spark.databricks.delta.snapshotPartitions": partitions,
        # A micro-batch's shuffles carry a few thousand rows: a partition per core, planned once.
        # Adaptive execution would re-plan after every shuffle stage, a Spark job each.
        "spark.sql.shuffle.partitions": partitions,
        "spark.sql.adaptive.enabled": "false",
        # Every micro-batch plans the same few dozen queries; keep all their generated classes
        # (the default keeps 100) so a batch does not compile them, and the JIT them, again.
        "spark.sql.codegen.cache.maxEntries": "2000",
        # Row projections interpreted, not generated. Every task that reads a Delta log or writes
        # a commit's files builds projections over Delta's nested action schema (add files, stats,
        # deletion vectors); generating their Java source costs more than a micro-batch's few
        # thousand rows ever take to evaluate. Whole-stage code generation is unaffected.
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        # Every micro-batch adds a small file to each table it writes (one per month). Unchecked,
        # they pile up all day and every lookup of ops.stream_state reads them all, so micro-batches
        # slow down as the day goes on. Delta compacts a table's small files right after the
        # commit that brings them to 50 (auto compaction, a separate commit).
        "spark.databricks.delta.autoCompact.enabled": str(auto_compact).lower(),
        # PySpark records the Python call site of every Column function for error messages: several
        # JVM round trips and a stack walk per call, a few hundred calls per micro-batch. Errors
        # still name the failing operation; they lose only the Python line that built it.
        "spark.python.sql.dataFrameDebugging.enabled": "false",
    }
