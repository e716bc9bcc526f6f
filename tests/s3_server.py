"""moto's S3 (and IAM, DynamoDB) server on a free loopback port, for the tests and the S3 benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port

BIN = Path(sys.executable).parent


@dataclass
class MotoServer:
    endpoint: str
    log: Path
    process: subprocess.Popen

    def refused_puts(self) -> int:
        """Conditional PUTs the server answered 412 Precondition Failed (a commit another writer won)."""
        return sum(1 for line in self.log.read_text().splitlines() if "PUT " in line and '" 412 ' in line)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_moto(folder: Path, **env: str) -> MotoServer:
    port = free_port()
    log = folder / f"moto-{port}.log"
    process = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, **env})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)  # noqa: S310 - loopback test server
            return MotoServer(endpoint, log, process)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
