"""The one HTTP client for Prometheus-compatible servers (private).

``collect.PrometheusSource``, ``collect.RemoteWriter``, the sandbox's Prometheus
and JMX exporters, and ``history_sandbox.HistoryStore`` all talk HTTP through
:class:`PrometheusHttp`: it owns the requests (standard library ``urllib``),
the timeout (it bounds the whole answer, not each read), auth (basic, bearer,
extra headers), TLS, the size limit on answers, and the wording of errors.

Errors
------
``KbpConnectionError`` (``address=`` the URL without credentials, ``status=``
where HTTP answered): unreachable, refused (401/403), missing (404), or a
server-side failure of the API. ``KbpInputError`` (``query=``): the server
rejected the PromQL, or answered something that is not a Prometheus API.
Credentials are sent in headers and never appear in messages.

It sits beside ``errors.py`` (not in ``collect/``) because the sandbox, a
layer below ``collect/``, uses it too.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time as _time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from kbp_notebook.errors import KbpConnectionError, KbpInputError

__all__ = ["MAX_RESPONSE_BYTES", "PrometheusHttp", "public_url"]

#: Largest answer read from the server (a runaway or hostile server cannot exhaust memory).
MAX_RESPONSE_BYTES = 512 * 2**20

_FORM = "application/x-www-form-urlencoded"


def public_url(url: str) -> str:
    """Return the URL without any ``user:password@`` part, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PrometheusHttp:
    """Requests to one Prometheus-compatible server (or exporter) at a base URL.

    Parameters
    ----------
    url
        Base URL (``http://`` or ``https://``); a ``user:password@`` part becomes
        basic auth unless ``basic_auth`` is given, and is never shown.
    service
        What answers there, for messages (``"Prometheus"``, ``"JMX exporter of
        broker 1"``, ``"the remote-write endpoint"``).
    hint
        What to check when it cannot be reached (ends the message).
    missing_hint
        What to check when the server answers 404.
    timeout_s
        Bound on each whole request, answer included.
    basic_auth, bearer_token, headers
        Credentials and extra headers (e.g. ``{"X-Scope-OrgID": "tenant"}``).
    verify, ca_file
        TLS: verify the certificate (``False`` to skip; avoid), CA bundle.

    Attributes
    ----------
    requests, bytes_received
        Requests sent and bytes of answers read so far (reset them to measure).
    """

    def __init__(
        self,
        url: str,
        *,
        service: str = "Prometheus",
        hint: str = "check that it runs, the URL and port, and TLS settings (ca_file/verify)",
        missing_hint: str = "check the URL and any path prefix (e.g. http://host:9090/prometheus)",
        timeout_s: float = 10.0,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        verify: bool = True,
        ca_file: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise KbpInputError(
                f"{service} url {url!r} must start with http:// or https://, e.g. "
                f"'http://127.0.0.1:9090'.",
                column="url",
            )
        parsed = urllib.parse.urlsplit(url)
        if parsed.username and basic_auth is None:
            basic_auth = (
                urllib.parse.unquote(parsed.username),
                urllib.parse.unquote(parsed.password or ""),
            )
        self.url = public_url(url).rstrip("/")
        self.service = service
        self.hint = hint
        self.missing_hint = missing_hint
        self.timeout_s = float(timeout_s)
        self.requests = 0
        self.bytes_received = 0
        self._headers = {"Accept": "application/json", "User-Agent": "kbp-notebook"}
        self._headers.update(dict(headers or {}))
        if basic_auth is not None:
            user, password = basic_auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        if bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        self._ssl: ssl.SSLContext | None = None
        if self.url.startswith("https://"):
            self._ssl = ssl.create_default_context(cafile=ca_file)
            if not verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    def __repr__(self) -> str:
        return f"PrometheusHttp({self.url!r}, service={self.service!r})"

    # -- transport --------------------------------------------------------------

    def send(
        self,
        path: str = "",
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "the request",
    ) -> tuple[int, bytes]:
        """Send one request to ``url + path`` (POST with ``body``, else GET).

        Parameters
        ----------
        path
            Appended to the base URL (``"/api/v1/query"``; ``""`` for the URL itself).
        body, headers
            Request body and headers added to the client's.
        what
            Names the request in messages (``"query 'up'"``).

        Returns
        -------
        tuple of (int, bytes)
            HTTP status and body. Statuses other than 401/403/404 are returned
            for the caller to explain.

        Raises
        ------
        KbpConnectionError
            Refused (401/403), missing (404), unreachable, timed out, cut short.
        KbpInputError
            An answer larger than ``MAX_RESPONSE_BYTES``.
        """
        request = urllib.request.Request(
            self.url + path,
            data=body,
            headers={**self._headers, **dict(headers or {})},
            method="GET" if body is None else "POST",
        )
        # timeout_s bounds the whole request: a server that trickles bytes or
        # never ends its answer must not hold a notebook (or the memory) hostage.
        deadline = _time.monotonic() + self.timeout_s
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._ssl) as resp:
                payload = _read_body(resp, deadline)
                status = int(resp.status)
            self.bytes_received += len(payload)
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                payload = _read_body(exc, deadline) if exc.fp is not None else b""
            except (_TooLarge, OSError, http.client.HTTPException):
                payload = b""
            self._raise_refused(status, path)
        except _TooLarge:
            raise KbpInputError(
                f"{self.service} at {self.url} answered with more than "
                f"{MAX_RESPONSE_BYTES // 2**20} MiB for {what}; narrow the time range, "
                f"raise the step, or aggregate in PromQL (sum by ...).",
                address=self.url,
                query=what,
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
                reason = f"{type(exc).__name__}: the answer was cut short or is not HTTP"
            raise KbpConnectionError(
                f"Cannot reach {self.service} at {self.url} ({type(reason).__name__}: {reason}); "
                f"{self.hint}.",
                address=self.url,
            ) from None
        return status, payload

    def _raise_refused(self, status: int, path: str) -> None:
        if status in (401, 403):
            raise KbpConnectionError(
                f"{self.service} at {self.url} refused the request (HTTP {status}); check the "
                f"credentials (basic_auth / bearer_token / Authorization header) and the "
                f"permissions of that account.",
                address=self.url,
                status=status,
            ) from None
        if status == 404:
            raise KbpConnectionError(
                f"{self.service} at {self.url} has no {path or 'such path'} (HTTP 404); "
                f"{self.missing_hint}.",
                address=self.url,
                status=status,
            ) from None

    def text(self, path: str = "") -> str:
        """GET ``url + path`` and return the answer as text (any non-2xx status raises)."""
        status, payload = self.send(path)
        if not 200 <= status < 300:
            raise KbpConnectionError(
                f"{self.service} at {self.url}{path} answered HTTP {status}: "
                f"{payload[:300].decode('utf-8', 'replace')}; {self.hint}.",
                address=self.url,
                status=status,
            )
        return payload.decode("utf-8", "replace")

    # -- the HTTP API -------------------------------------------------------------

    def api(self, endpoint: str, params: Mapping[str, str], *, query: str) -> Any:
        """POST a form to ``/api/v1/<endpoint>`` and return the answer's ``data``.

        Parameters
        ----------
        endpoint
            ``"query"``, ``"query_range"``, ``"series"``, ``"targets"``, ...
        params
            The form fields.
        query
            Names the request in messages (usually the PromQL).

        Returns
        -------
        Any
            ``data``: a list for ``series``, a dict with a ``result`` list for
            ``query`` and ``query_range``, as the server sent it otherwise.

        Raises
        ------
        KbpInputError
            The PromQL was rejected (``bad_data``/``execution``, HTTP 400/422),
            or the answer is not a Prometheus API answer.
        KbpConnectionError
            As :meth:`send`, or the server failed on the query.
        """
        body = urllib.parse.urlencode(params).encode("utf-8")
        status, payload = self.send(
            f"/api/v1/{endpoint}",
            body=body,
            headers={"Content-Type": _FORM},
            what=f"query {query!r}",
        )
        return self._api_data(endpoint, status, payload, query)

    def _api_data(self, endpoint: str, status: int, payload: bytes, query: str) -> Any:
        """Return the ``data`` of an API answer; raise on non-JSON, errors or wrong shapes."""
        where = f"{self.service} at {self.url}"
        try:
            document = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise KbpInputError(
                f"{where} answered HTTP {status} with something that is not "
                f"JSON ({exc}) for query {query!r}; is the URL a Prometheus API "
                f"(not a proxy login page)?",
                address=self.url,
                query=query,
            ) from None
        if not isinstance(document, dict) or "status" not in document:
            raise KbpInputError(
                f"{where} answered with JSON that is not an API response "
                f"(no 'status') for query {query!r}.",
                address=self.url,
                query=query,
            )
        if document.get("status") != "success":
            message = document.get("error") or "unknown error"
            error_type = document.get("errorType") or ""
            if error_type in ("bad_data", "execution") or status in (400, 422):
                raise KbpInputError(
                    f"{where} rejected the query {query!r}: {message}"
                    f" ({error_type or 'HTTP ' + str(status)}). Fix the PromQL.",
                    address=self.url,
                    query=query,
                    prometheus_error=message,
                )
            raise KbpConnectionError(
                f"{where} failed on query {query!r}: {message} "
                f"({error_type or 'HTTP ' + str(status)}); retry or narrow the time range.",
                address=self.url,
                query=query,
            )
        data = document.get("data")
        if endpoint == "series" and not isinstance(data, list):
            raise KbpInputError(
                f"{where} answered /series without a list of series.",
                address=self.url,
                query=query,
            )
        if endpoint in ("query", "query_range") and (
            not isinstance(data, dict) or not isinstance(data.get("result"), list)
        ):
            raise KbpInputError(
                f"{where} answered without data.result for query {query!r}.",
                address=self.url,
                query=query,
            )
        return data

    def instant(self, promql: str, *, time_s: float | None = None) -> list[dict[str, Any]]:
        """Run an instant query; return ``data.result`` (a list of series)."""
        params = {"query": promql}
        if time_s is not None:
            params["time"] = f"{time_s:.3f}"
        result: list[dict[str, Any]] = self.api("query", params, query=promql)["result"]
        return result


class _TooLarge(Exception):
    """An answer larger than MAX_RESPONSE_BYTES."""


def _read_body(resp: Any, deadline: float) -> bytes:
    """Read an HTTP body in chunks, giving up at ``deadline`` or beyond MAX_RESPONSE_BYTES."""
    chunks: list[bytes] = []
    size = 0
    read = getattr(resp, "read1", None) or resp.read
    while True:
        if _time.monotonic() > deadline:
            raise TimeoutError("timed out while reading the answer")
        chunk = read(1 << 20)
        if not chunk:
            missing = getattr(resp, "length", None)
            if isinstance(missing, int) and missing > 0:  # read1 does not raise this itself
                raise http.client.IncompleteRead(b"".join(chunks), missing)
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _TooLarge
        chunks.append(chunk)
