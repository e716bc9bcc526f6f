"""The statement service: an ASGI application answering account statements from both tiers, read-only.

``GET /accounts/{account_id}/statement?from=YYYY-MM-DD&to=YYYY-MM-DD`` answers JSON (or CSV with
``Accept: text/csv``): the rows, order and per-currency totals of ``ledgerlake statement``, read by
the same ``StatementReader`` from one snapshot per tier. ``GET /health`` shows the versions being
served and the cache; ``/docs`` the OpenAPI documentation.

Access: with API keys configured every statement needs one (``X-API-Key`` or ``Authorization:
Bearer``); each key (or, without keys, each client address) gets a token bucket of
``rate_limit`` statements a second. Every error is JSON ``{"error": {"status", "message"}}``;
an unexpected failure is logged with its trace and answered 500 without one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as UrlPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ledgerlake.query.statement import StatementError, check_account, check_range, read_statement

if TYPE_CHECKING:
    from ledgerlake.query.reader import StatementReader

log = logging.getLogger(__name__)

API_KEYS_ENV = "LEDGERLAKE_API_KEYS"
KEY_SCHEME = "sha256"
MAX_STATEMENT_DAYS = 3660          # ten years: a longer range is refused, not read
MAX_BUCKETS = 10_000               # rate-limit buckets kept before idle ones are forgotten


class KeyFileError(ValueError):
    """An API key file or variable that cannot be used."""


def new_api_key() -> str:
    """A fresh random key (256 bits, URL-safe)."""
    return "llk_" + secrets.token_urlsafe(32)


def key_line(name: str, key: str) -> str:
    """The line that lets ``key`` in as ``name``: only the key's SHA-256 is stored (a random key needs no salt)."""
    return f"{name}:{KEY_SCHEME}${hashlib.sha256(key.encode()).hexdigest()}"


@dataclass(frozen=True)
class ApiKeys:
    """Key holders by the SHA-256 of their key."""

    by_digest: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, origin: str) -> ApiKeys:
        """``name:sha256$HEX`` entries, one per line (or comma-separated); ``#`` starts a comment."""
        found: dict[str, str] = {}
        for number, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            name, _, stored = line.partition(":")
            scheme, _, digest = stored.partition("$")
            if not name or scheme != KEY_SCHEME or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
                raise KeyFileError(f"{origin} entry {number} is not NAME:sha256$HEX (see --new-api-key)")
            found[digest] = name
        return cls(found)

    @classmethod
    def load(cls, path: str | None) -> ApiKeys:
        """From the file, else from the environment variable, else none."""
        if path:
            try:
                return cls.parse(Path(path).read_text(), f"--api-keys-file {path}")
            except OSError as exc:
                raise KeyFileError(f"--api-keys-file {path} cannot be read: {exc.strerror}") from None
        return cls.parse(os.environ.get(API_KEYS_ENV, ""), API_KEYS_ENV)

    def __bool__(self) -> bool:
        return bool(self.by_digest)

    def holder(self, key: str | None) -> str | None:
        """The name the key belongs to, or None."""
        if not key:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()
        for known, name in self.by_digest.items():
            if hmac.compare_digest(known, digest):
                return name
        return None


class RateLimiter:
    """A token bucket per caller: ``rate`` requests a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        self.rate = rate
        self.burst = burst or max(1, math.ceil(rate * 2))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, caller: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > MAX_BUCKETS:
                refilled = now - self.burst / self.rate      # buckets idle this long are full again: forget them
                self._buckets = {c: b for c, b in self._buckets.items() if b[1] > refilled}
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.rate


@dataclass
class ServiceSettings:
    reader: StatementReader
    today: Any                         # () -> date: the serving window is counted back from it
    window_start: Any                  # (today) -> date: the first day of the serving window
    keys: ApiKeys = field(default_factory=ApiKeys)
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0))
    refresh_seconds: float = 0.5
    started: float = field(default_factory=time.time)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


def create_app(settings: ServiceSettings) -> FastAPI:
    app = FastAPI(
        title="ledgerlake statements",
        description="Account statements from the lake: months in the serving window from "
                    "serving.transactions_recent, older months from silver.transactions, read from one "
                    "snapshot of each. Read-only.",
        version="1",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                             for e in exc.errors())
        return error(422, problems or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Any:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, "internal error; see the service's log")

    def caller(request: Request) -> str:
        """The key holder (401 without a valid key when keys are configured), else the client address."""
        if settings.keys:
            presented = request.headers.get("x-api-key")
            auth = request.headers.get("authorization", "")
            if not presented and auth.lower().startswith("bearer "):
                presented = auth[7:].strip()
            holder = settings.keys.holder(presented)
            if holder is None:
                raise HTTPException(401, "an API key is required (X-API-Key header or Authorization: Bearer)"
                                    if not presented else "unknown API key", headers={"WWW-Authenticate": "Bearer"})
            return "key:" + holder
        return "address:" + (request.client.host if request.client else "?")

    @app.get(
        "/accounts/{account_id}/statement",
        summary="One account's transactions in a date range, oldest first, with per-currency totals",
        responses={200: {"content": {"application/json": {}, "text/csv": {}},
                         "description": "JSON: account_id, from, to, read (tier, months, version), "
                                        "transactions (the lake contract's columns), totals per currency; "
                                        "CSV (Accept: text/csv): a header line and one line per transaction"},
                   401: {"description": "no or unknown API key"}, 422: {"description": "bad account id or dates"},
                   429: {"description": "rate limit: retry after the Retry-After seconds"}},
    )
    async def statement(
        request: Request,
        account_id: str = UrlPath(description="12-digit account number, leading zeros kept"),
        first: str = Query(alias="from", description="first posting date, YYYY-MM-DD"),
        last: str = Query(alias="to", description="last posting date (inclusive), YYYY-MM-DD"),
    ) -> Response:
        who = caller(request)
        wait = settings.limiter.allow(who)
        if wait:
            return error(429, f"rate limit of {settings.limiter.rate:g} statements a second exceeded",
                         {"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            account = check_account(account_id)
            start, end = check_range(first, last)
        except StatementError as exc:
            message = str(exc).replace("--account", "account_id").replace("--from", "from").replace("--to", "to")
            return error(422, message)
        if (end - start).days >= MAX_STATEMENT_DAYS:
            return error(422, f"from..to spans more than {MAX_STATEMENT_DAYS} days")
        window_start = settings.window_start(settings.today())
        # from the cache on the event loop (a few ms); a statement that must read files goes to a worker thread
        found = read_statement(settings.reader, account, start, end, window_start, cached_only=True) or \
            await run_in_threadpool(read_statement, settings.reader, account, start, end, window_start)
        assert found is not None
        if "text/csv" in request.headers.get("accept", ""):
            return Response(found.csv(), media_type="text/csv; charset=utf-8")
        return Response(found.document(), media_type="application/json")

    @app.get("/health", summary="Liveness, the table versions being served and the file cache")
    def health() -> dict[str, Any]:
        snapshots = settings.reader.snapshots()
        return {"status": "ok", "lake": settings.reader.warehouse,
                "tables": {name: snap.describe() for name, snap in snapshots.items()},
                "refresh_seconds": settings.refresh_seconds, "cache": settings.reader.cache.stats(),
                "uptime_seconds": round(time.time() - settings.started, 1)}

    return app
