"""Object storage (Amazon S3 and S3-compatible stores): URIs, boto3 clients, and Spark's ``s3a`` settings.

Everything comes from the standard AWS configuration, read once by botocore for both sides:
``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3`` (or a profile's ``endpoint_url``), ``AWS_REGION``,
``AWS_PROFILE`` and the credentials chain (environment keys, session token, profiles, instance
roles). boto3 lists and fingerprints landing files; Spark reads and writes through Hadoop's ``s3a``
connector, whose credentials come from the AWS SDK's own default chain in each JVM, so a key never
enters Spark's settings, a log line, a table or a report.

Delta's log on S3 uses ``ledgerlake.spark.S3ConditionalLogStore``: commits are conditional PUTs
(``If-None-Match: *``), the mutual exclusion S3 offers since 2024, so any number of processes may
commit to one table at once (docs/operations.md, "Object storage").
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledgerlake.console import BadInput

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SCHEMES = ("s3://", "s3a://")
LOG_STORE = "ledgerlake.spark.S3ConditionalLogStore"
# Spark settings every session carries: Delta's log store for both spellings of an S3 URI, and
# s3:// read by the same connector as s3a://.
SPARK_CONF = {
    "spark.delta.logStore.s3a.impl": LOG_STORE,
    "spark.delta.logStore.s3.impl": LOG_STORE,
    "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
}
# The AWS SDK v2 default chain: environment, system properties, web identity, profiles, containers, instances.
CREDENTIALS_PROVIDER = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"


class ObjectStoreError(BadInput):
    """A bucket, prefix or credential the command cannot use (exit status 2): retrying would not help."""


class ObjectStoreUnavailable(RuntimeError):
    """The endpoint did not answer or answered with a server error (exit status 3: retry later)."""


def is_s3(uri: str) -> bool:
    return uri.startswith(SCHEMES)


def to_s3a(uri: str) -> str:
    """The URI Spark reads: ``s3://bucket/key`` -> ``s3a://bucket/key`` (other paths unchanged)."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        rest = uri.split("://", 1)[1] if is_s3(uri) else ""
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ObjectStoreError(f"not an S3 URI (s3://BUCKET/PREFIX): {uri}")
        return cls(bucket, key)

    def uri(self, key: str | None = None) -> str:
        """The s3a:// URI of this object (or of another key in the same bucket)."""
        return f"s3a://{self.bucket}/{self.key if key is None else key}"


def client() -> Any:
    """The S3 client of the standard AWS configuration (one per distinct configuration), failing fast
    when the endpoint is down."""
    return _client(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))


@functools.cache
def _client(_environment: tuple[tuple[str, str], ...]) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": "path"} if _custom_endpoint() else None)
    return boto3.session.Session().client("s3", region_name=_region(), config=config)


def _region() -> str | None:
    """The region: botocore's (AWS_DEFAULT_REGION, the profile), else AWS_REGION (the SDKs' variable)."""
    import boto3

    return boto3.session.Session().region_name or os.environ.get("AWS_REGION") or None


def _custom_endpoint() -> str | None:
    """The endpoint URL when it is not AWS's own (MinIO, moto, a VPC endpoint), as botocore resolves it
    (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, a profile's endpoint_url)."""
    import boto3

    url = boto3.session.Session().client("s3", region_name=_region() or "us-east-1").meta.endpoint_url
    return None if url is None or url.rstrip("/").endswith("amazonaws.com") else str(url)


def s3a_settings() -> dict[str, str]:
    """Hadoop settings of the ``s3a`` connector from the same AWS configuration boto3 reads (no secrets)."""
    settings = {
        "fs.s3a.aws.credentials.provider": CREDENTIALS_PROVIDER,
        # fail within seconds when the endpoint is down, rather than retrying for minutes
        "fs.s3a.connection.establish.timeout": "15s",
        "fs.s3a.attempts.maximum": "3",
        "fs.s3a.retry.limit": "3",
        "fs.s3a.retry.interval": "250ms",
        # commits are conditional PUTs (S3ConditionalLogStore)
        "fs.s3a.create.conditional.enabled": "true",
    }
    region = _region()
    if region:
        settings["fs.s3a.endpoint.region"] = region
    endpoint = _custom_endpoint()
    if endpoint:
        settings["fs.s3a.endpoint"] = endpoint
        settings["fs.s3a.path.style.access"] = "true"
        settings["fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https")).lower()
    return settings


def configure(spark: SparkSession) -> None:
    """Point the session's ``s3a`` connector at the AWS configuration of this process."""
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001 - Spark's Hadoop configuration
    for key, value in s3a_settings().items():
        hadoop_conf.set(key, value)


def _explain(exc: BaseException, uri: str) -> Exception:
    """The error a command reports for a failed S3 call on ``uri``: one line, never a credential."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return ObjectStoreError(f"no AWS credentials for {uri} (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                                "AWS_SECRET_ACCESS_KEY)")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError
                  | bx.ConnectionClosedError):
        return ObjectStoreUnavailable(f"S3 endpoint unreachable for {uri}: {exc}")
    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == "NoSuchBucket":
            return ObjectStoreError(f"bucket does not exist: {uri}")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                    "InvalidClientTokenId", "AuthFailure"):
            return ObjectStoreError(f"the S3 endpoint refused the credentials for {uri} ({code})")
        if code == "AccessDenied" or status == 403:
            return ObjectStoreError(f"access denied to {uri}")
        if code in ("404", "NoSuchKey", "NotFound") or status == 404:
            return ObjectStoreError(f"no such object: {uri}")
        if code in ("412", "PreconditionFailed") or status == 412:
            return ObjectStoreError(f"{uri} changed while it was being read; run again")
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"):
            return ObjectStoreUnavailable(f"S3 error for {uri}: {code or status}")
        return ObjectStoreError(f"S3 refused the request for {uri}: {code or status}")
    return ObjectStoreUnavailable(f"S3 request for {uri} failed: {type(exc).__name__}")


def _call(uri: str, action: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return action(**kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise _explain(exc, uri) from None


def check_prefix(uri: str) -> None:
    """Fail with a one-line error unless the bucket exists and the prefix can be listed with these credentials."""
    where = S3Uri.parse(uri)
    _call(uri, client().list_objects_v2, Bucket=where.bucket, Prefix=where.key, MaxKeys=1)


@dataclass(frozen=True)
class S3Object:
    uri: str            # s3a:// URI, the one Spark reads
    name: str           # base name
    size: int
    etag: str


def list_objects(uri: str) -> Iterator[S3Object]:
    """Every object under the prefix (recursively), page by page, in key order."""
    where = S3Uri.parse(uri)
    paginator = client().get_paginator("list_objects_v2")
    prefix = where.key
    pages = paginator.paginate(Bucket=where.bucket, Prefix=prefix)
    try:
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue
                yield S3Object(where.uri(key), key.rsplit("/", 1)[-1], int(item["Size"]), item["ETag"])
    except Exception as exc:  # noqa: BLE001 - botocore errors raised while paging
        raise _explain(exc, uri) from None


def read_head(obj: S3Object, size: int) -> bytes:
    """The object's first ``size`` bytes (a ranged GET of the version that was listed)."""
    if obj.size == 0:
        return b""
    where = S3Uri.parse(obj.uri)
    response = _call(obj.uri, client().get_object, Bucket=where.bucket, Key=where.key,
                     Range=f"bytes=0-{size - 1}", IfMatch=obj.etag)
    return bytes(response["Body"].read())


def fingerprint(obj: S3Object, head_size: int, chunk: int = 4 << 20) -> tuple[str, bytes, int]:
    """SHA-256, first bytes and size of the listed version of the object, streamed chunk by chunk."""
    where = S3Uri.parse(obj.uri)
    response = _call(obj.uri, client().get_object, Bucket=where.bucket, Key=where.key, IfMatch=obj.etag)
    digest = hashlib.sha256()
    head = b""
    size = 0
    try:
        for block in response["Body"].iter_chunks(chunk):
            if len(head) < head_size:
                head += block[: head_size - len(head)]
            digest.update(block)
            size += len(block)
    except Exception as exc:  # noqa: BLE001 - a connection lost mid-object
        raise _explain(exc, obj.uri) from None
    return digest.hexdigest(), head, size


def read_object(uri: str) -> bytes:
    """A whole object's bytes."""
    where = S3Uri.parse(uri)
    response = _call(uri, client().get_object, Bucket=where.bucket, Key=where.key)
    return bytes(response["Body"].read())


def delta_rs_options() -> dict[str, str]:
    """delta-rs's storage options from the same AWS configuration boto3 reads (the credentials stay in memory)."""
    import boto3

    options = {"AWS_REGION": _region() or "us-east-1"}
    endpoint = _custom_endpoint()
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        options["AWS_ALLOW_HTTP"] = str(endpoint.startswith("http://")).lower()
    credentials = boto3.session.Session().get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        options["AWS_ACCESS_KEY_ID"] = frozen.access_key
        options["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
        if frozen.token:
            options["AWS_SESSION_TOKEN"] = frozen.token
    return options
