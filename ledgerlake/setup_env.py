"""One-time set-up of the virtualenv's Spark: Delta and the project's extensions on spark-submit's classpath.

Run by ``make venv``. It resolves the Delta package's jars from Maven Central with Spark's
own resolver (into ``~/.ivy2*``; falling back to ``mvn dependency:get``, whose local
repository Spark's resolver also reads), builds the extensions jar, and writes
``spark-defaults.conf`` into the installed PySpark's ``conf/`` folder with both on
``spark.jars``, so that ``spark-submit jobs/backfill.py ...`` finds Delta without extra
flags and without resolving anything at start-up. With ``--s3`` (``make s3``, run by ``make test``)
it also resolves Hadoop's S3 connector with the AWS SDK bundle (~700 MB, once) and puts them on
the class path of spark-submit's drivers and executors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ledgerlake.extensions import READ_ONLY_EXTENSION, spark_home
from ledgerlake.session import (
    DELTA_EXTENSION,
    delta_jars,
    delta_package,
    extensions_classpath,
    hadoop_aws_package,
    s3_jars,
)

MARK = "# written by ledgerlake.setup_env"


def write_spark_defaults(object_store: list[str]) -> Path:
    """Delta settings for every spark-submit of this virtualenv (and the S3 connector's jars, if given)."""
    conf_dir = spark_home() / "conf"
    conf_dir.mkdir(exist_ok=True)
    target = conf_dir / "spark-defaults.conf"
    classpath = os.pathsep.join(object_store)
    s3_lines = (f"spark.driver.extraClassPath {classpath}\nspark.executor.extraClassPath {classpath}\n"
                if object_store else "")
    target.write_text(
        f"{MARK}\n"
        f"spark.jars {','.join([*delta_jars(), str(extensions_classpath())])}\n"
        f"spark.sql.extensions {DELTA_EXTENSION},{READ_ONLY_EXTENSION}\n"
        "spark.sql.catalog.spark_catalog org.apache.spark.sql.delta.catalog.DeltaCatalog\n"
        "spark.sql.session.timeZone UTC\n"
        "spark.sql.legacy.javaCharsets true\n"
        "spark.log.structuredLogging.enabled false\n"
        f"{s3_lines}"
    )
    return target


def jars_ready() -> bool:
    """Resolve the Delta jars now (downloaded once), not during the first job."""
    try:
        delta_jars()
    except Exception as exc:  # noqa: BLE001 - the resolver's JVM fails in many ways; each means "not resolved"
        print(f"ledgerlake: resolving {delta_package()} failed: {exc}", file=sys.stderr)
        return False
    return True


def maven_fallback() -> bool:
    """Fetch the Delta jar and its dependencies into ~/.m2 with Maven, if Maven is installed."""
    if not shutil.which("mvn"):
        return False
    result = subprocess.run(["mvn", "-q", "dependency:get", f"-Dartifact={delta_package()}"],
                            capture_output=True, text=True)
    return result.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledgerlake.setup_env",
                                     description="Resolve the jars spark-submit needs; write spark-defaults.conf.")
    parser.add_argument("--s3", action="store_true",
                        help=f"also resolve {hadoop_aws_package()} and the AWS SDK bundle (~700 MB, once)")
    args = parser.parse_args(argv)
    if not (jars_ready() or (maven_fallback() and jars_ready())):
        print(f"ledgerlake: could not resolve {delta_package()}; check network access to Maven Central",
              file=sys.stderr)
        return 1
    print(f"ledgerlake: Delta jars ready ({delta_package()})")
    object_store = s3_jars() if args.s3 else []
    if object_store:
        print(f"ledgerlake: S3 connector jars ready ({hadoop_aws_package()})")
    print(f"ledgerlake: wrote {write_spark_defaults(object_store)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
