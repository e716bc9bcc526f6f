"""The project's Spark extensions, written in Java (``ledgerlake/java``), built into a jar on first use.

* ``ReadOnlySql``: installed in every ledgerlake session; with ``spark.ledgerlake.sql.readOnly``
  it refuses whatever is not a query (``ledgerlake sql`` and ``serve-sql`` switch it on);
* ``QueryLog``: a listener of the SQL server logging each statement with its user;
* ``PasswordFileAuthenticator``: the SQL server's password check (hashes from a file);
* ``S3ConditionalLogStore``: Delta's log on S3 with conditional PUTs, so several processes may commit
  to one table at once (``ledgerlake/objectstore.py``).

They run inside the JVM, the only place that sees every statement a JDBC client sends. The jar
is compiled with the JDK's ``javac`` against the installed PySpark's jars and Delta's, once per
version of the sources and of Spark, and cached (``LEDGERLAKE_CACHE``, default ``~/.cache/ledgerlake``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SOURCES = Path(__file__).resolve().parent / "java"
READ_ONLY_EXTENSION = "ledgerlake.spark.ReadOnlySql"
QUERY_LOG = "ledgerlake.spark.QueryLog"
PASSWORD_AUTHENTICATOR = "ledgerlake.spark.PasswordFileAuthenticator"
# Session settings the extension reads (spark.* so that every JDBC session inherits them at launch).
READ_ONLY = "spark.ledgerlake.sql.readOnly"
LAKE_ROOT = "spark.ledgerlake.sql.lakeRoot"
PASSWORD_FILE = "spark.ledgerlake.sql.passwordFile"
REFUSED = "read-only lake:"          # how a refusal's message starts


class ExtensionBuildError(RuntimeError):
    """The extensions jar could not be compiled (no JDK, or a compiler error)."""


def spark_home() -> Path:
    """The Spark distribution inside the installed PySpark (bin/, conf/, jars/)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def cache_dir() -> Path:
    return Path(os.environ.get("LEDGERLAKE_CACHE") or Path.home() / ".cache" / "ledgerlake")


def extensions_jar(spark_jars: Path, extra: list[str]) -> Path:
    """The compiled extensions, built now against ``spark_jars`` and the ``extra`` jar files if this
    version of the sources and Spark has no jar yet."""
    import pyspark

    sources = sorted(SOURCES.rglob("*.java"))
    digest = hashlib.sha256(pyspark.__version__.encode())
    for source in sources:
        digest.update(source.read_bytes())
    target = cache_dir() / f"ledgerlake-spark-{digest.hexdigest()[:16]}.jar"
    if target.exists():
        return target
    javac = shutil.which("javac") or str(Path(os.environ.get("JAVA_HOME", "/nonexistent")) / "bin" / "javac")
    if not Path(javac).exists():
        raise ExtensionBuildError("javac not found: a JDK 17 (not only a JRE) builds the Spark extensions; "
                                  "install one or set JAVA_HOME")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        built = subprocess.run([javac, "--release", "17", "-nowarn", "-cp", os.pathsep.join([str(spark_jars / "*"), *extra]),
                                "-d", classes, *map(str, sources)], capture_output=True, text=True)
        if built.returncode != 0:
            raise ExtensionBuildError(f"javac failed: {built.stderr.strip()[:2000]}")
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: ledgerlake\n")
            for path in sorted(Path(classes).rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        os.replace(partial, target)      # atomic: concurrent first runs each build, one jar wins
    return target


def read_only_conf(lake_root: str) -> dict[str, str]:
    """Settings that make a session answer queries only, reading files of this lake only."""
    return {READ_ONLY: "true", LAKE_ROOT: lake_root}


def is_refusal(exc: BaseException) -> bool:
    """True when the read-only check refused a statement."""
    return REFUSED in str(exc)


def check_read_only(spark: SparkSession) -> None:
    """Fail unless the session refuses changes: the switch is on and the extension is loaded."""
    try:
        spark.sql("SET spark.ledgerlake.sql.probe = 1")
    except Exception as exc:  # noqa: BLE001 - py4j wraps the JVM's SecurityException
        if is_refusal(exc):
            return
        raise
    raise ExtensionBuildError(f"the session accepts changes: {READ_ONLY_EXTENSION} is not loaded "
                              "(is the extensions jar on the class path?)")
