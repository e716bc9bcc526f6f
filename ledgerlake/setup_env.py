"""One-time set-up of the virtualenv's Spark: Delta and the project's extensions on spark-submit's classpath.

Run by ``make venv``. It writes ``spark-defaults.conf`` into the installed PySpark's
``conf/`` folder so that ``spark-submit jobs/backfill.py ...`` finds Delta without
extra flags, then starts one local session so Spark resolves the Delta jars from
Maven Central into ``~/.ivy2`` (falling back to ``mvn dependency:get``, whose
local repository Spark's resolver also reads).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ledgerlake.extensions import READ_ONLY_EXTENSION
from ledgerlake.session import DELTA_EXTENSION, delta_package, extensions_classpath, spark_home

MARK = "# written by ledgerlake.setup_env"


def write_spark_defaults() -> Path:
    """Delta settings for every spark-submit of this virtualenv."""
    conf_dir = spark_home() / "conf"
    conf_dir.mkdir(exist_ok=True)
    target = conf_dir / "spark-defaults.conf"
    target.write_text(
        f"{MARK}\n"
        f"spark.jars.packages {delta_package()}\n"
        f"spark.jars {extensions_classpath()}\n"
        f"spark.sql.extensions {DELTA_EXTENSION},{READ_ONLY_EXTENSION}\n"
        "spark.sql.catalog.spark_catalog org.apache.spark.sql.delta.catalog.DeltaCatalog\n"
        "spark.sql.session.timeZone UTC\n"
        "spark.sql.legacy.javaCharsets true\n"
        "spark.log.structuredLogging.enabled false\n"
    )
    return target


def warm_jars() -> bool:
    """Start a throwaway session so the Delta jars are downloaded now, not during the first job."""
    code = (
        "from ledgerlake.config import LakeConfig\n"
        "from ledgerlake.session import build_session\n"
        "import tempfile\n"
        "s = build_session(LakeConfig(warehouse=tempfile.mkdtemp(), master='local[1]'), 'ledgerlake-setup')\n"
        "s.range(1).count(); s.stop()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def maven_fallback() -> bool:
    """Fetch the Delta jar and its dependencies into ~/.m2 with Maven, if Maven is installed."""
    if not shutil.which("mvn"):
        return False
    result = subprocess.run(["mvn", "-q", "dependency:get", f"-Dartifact={delta_package()}"],
                            capture_output=True, text=True)
    return result.returncode == 0


def main() -> int:
    target = write_spark_defaults()
    print(f"ledgerlake: wrote {target}")
    if warm_jars():
        print(f"ledgerlake: Delta jars ready ({delta_package()})")
        return 0
    if maven_fallback() and warm_jars():
        print(f"ledgerlake: Delta jars ready via Maven ({delta_package()})")
        return 0
    print(f"ledgerlake: could not resolve {delta_package()}; check network access to Maven Central",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
