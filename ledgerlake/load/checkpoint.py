"""Checkpoint ownership: a streaming checkpoint belongs to one landing zone and one lake.

The checkpoint's marker file records both and the stream's application id, which is also
the Delta transaction identifier of every micro-batch's commits: reusing a checkpoint
elsewhere would skip or replay files silently, so it is refused.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING

from ledgerlake.lake import hadoop_fs
from ledgerlake.load.stream import StreamInputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("ledgerlake.stream")

CHECKPOINT_NAME = "_checkpoints/stream-events"
MARKER_NAME = "ledgerlake-checkpoint.json"


def default_checkpoint(lake_root: str) -> str:
    """The stream's checkpoint inside the lake."""
    return f"{lake_root.rstrip('/')}/{CHECKPOINT_NAME}"


def claim_checkpoint(spark: SparkSession, checkpoint: str, landing: str, lake_root: str) -> str:
    """The checkpoint's application id, creating its marker on first use.

    The marker records the landing zone and the lake the checkpoint belongs to. A checkpoint
    of another landing zone or lake, or one without a marker that already holds streaming
    state, is refused: reusing it would skip or replay files silently.
    """
    fs, root = hadoop_fs(spark, checkpoint)
    marker_path = hadoop_fs(spark, f"{checkpoint.rstrip('/')}/{MARKER_NAME}")[1]
    if fs.exists(marker_path):
        stream = fs.open(marker_path)
        try:
            text = spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")  # noqa: SLF001
        finally:
            stream.close()
        try:
            marker = json.loads(text)
            owner_input, owner_lake, app_id = marker["input"], marker["lake"], marker["app_id"]
        except (ValueError, KeyError) as exc:
            raise StreamInputError(f"checkpoint {checkpoint} has an unreadable marker {MARKER_NAME}") from exc
        if owner_input != landing or owner_lake != lake_root:
            raise StreamInputError(
                f"checkpoint {checkpoint} belongs to input {owner_input} and lake {owner_lake}, "
                f"not input {landing} and lake {lake_root}; pass another --checkpoint"
            )
        return str(app_id)
    if fs.exists(root) and len(fs.listStatus(root)) > 0:
        raise StreamInputError(
            f"checkpoint {checkpoint} holds streaming state but no {MARKER_NAME}: it is not this stream's; "
            "pass another --checkpoint"
        )
    app_id = uuid.uuid4().hex
    marker = {"input": landing, "lake": lake_root, "app_id": app_id,
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fs.mkdirs(root)
    out = fs.create(marker_path, False)
    try:
        out.write(bytearray(json.dumps(marker, indent=1).encode()))
    finally:
        out.close()
    log.info("new checkpoint %s for input %s (app id %s)", checkpoint, landing, app_id)
    return app_id
