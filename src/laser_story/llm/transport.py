"""JSON over HTTP with the standard library, so the pack needs no HTTP client dependency.

Connection failures, timeouts, 429 and 5xx are retried with exponential backoff; other statuses fail at
once. Each failure becomes an ``LLMError`` subclass whose message names the backend (``what``) and URL.
Headers are never logged or put into messages, because they may carry an API key.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import LLMHTTPError, LLMTimeoutError, LLMUnreachableError

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
RETRY_STATUSES = {429, 500, 502, 503, 504}


def excerpt(text: str, limit: int = 200) -> str:
    """A one-line, bounded excerpt of ``text`` for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _opener(url: str) -> urllib.request.OpenerDirector:
    # A proxy configured for the internet must not capture requests to a server on this machine.
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in LOOPBACK_HOSTS:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def request_json(
    url: str,
    payload: dict[str, Any] | None = None,
    *,
    what: str,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    retries: int = 2,
    backoff: float = 0.5,
) -> Any:
    """POST ``payload`` (or GET when it is None) and return the decoded JSON answer."""
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    all_headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    opener = _opener(url)
    attempts = retries + 1
    attempt = 0
    while True:
        attempt += 1
        request = urllib.request.Request(url, data=data, headers=all_headers, method="GET" if data is None else "POST")
        try:
            with opener.open(request, timeout=timeout) as response:
                body = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", errors="replace")
            if exc.code not in RETRY_STATUSES or attempt >= attempts:
                hint = (
                    " (check that api_key_env names the variable that holds a valid key)"
                    if exc.code in (401, 403)
                    else ""
                )
                raise LLMHTTPError(
                    f"{what} at {url} answered HTTP {exc.code} {exc.reason}: {excerpt(body) or '(empty body)'}{hint}"
                ) from None
            problem = f"HTTP {exc.code}"
        except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            timed_out = isinstance(reason, (TimeoutError, socket.timeout))
            if attempt >= attempts:
                if timed_out:
                    raise LLMTimeoutError(
                        f"{what} at {url} did not answer within {timeout:g} s ({attempts} tries); the model may be too "
                        "slow or still loading: raise timeout_s in the LLM Config node or lower max_tokens"
                    ) from None
                raise LLMUnreachableError(
                    f"cannot reach {what} at {url} ({reason}) after {attempts} tries; check that the server is "
                    "running and that base_url in the LLM Config node is right"
                ) from None
            problem = "timeout" if timed_out else str(reason)
        else:
            try:
                return json.loads(body)
            except json.JSONDecodeError:
                raise LLMHTTPError(f"{what} at {url} answered with text that is not JSON: {excerpt(body)!r}") from None
        log.warning("%s at %s: %s (try %d of %d); retrying", what, url, problem, attempt, attempts)
        time.sleep(backoff * 2 ** (attempt - 1))
