# The ledgerlake image: Airflow 3 plus a JDK 17 and the project's pinned dependencies, so the scheduler's
# tasks can spark-submit the jobs (client mode) to the Spark master of docker-compose.yml, which runs the
# same image's Spark (docker/spark-class).
# The repository itself is mounted at /opt/ledgerlake at run time; only its dependencies are baked in.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends default-jdk-headless \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/default-java

USER airflow
COPY --chown=airflow:root pyproject.toml constraints.txt README.md /opt/ledgerlake/
COPY --chown=airflow:root ledgerlake /opt/ledgerlake/ledgerlake
# Dependencies exactly as pinned for the project (Airflow 3.3.2 included, so the base stays as it is),
# then Delta's settings into PySpark's spark-defaults.conf and its jars, Hadoop's S3 connector and the
# AWS SDK into the image's Ivy cache (the lake and the landing zones are on MinIO).
RUN pip install --no-cache-dir -c /opt/ledgerlake/constraints.txt -e /opt/ledgerlake \
    && cd /opt/ledgerlake && python -m ledgerlake.setup_env --s3
ENV PYTHONPATH=/opt/ledgerlake \
    PYSPARK_PYTHON=python3
WORKDIR /opt/ledgerlake
