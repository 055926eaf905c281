"""An S3 API server for the object-storage tests (moto's server mode on 127.0.0.1, a free port),
and a wrapper that injects faults into the backend's requests one by one.

The server is started once per test session by the ``s3_server`` fixture of
tests/test_objstore.py and stopped at its end; each test gets its own bucket. Nothing
else needs to run: ``.ci/run`` installs moto with the test extra.
"""

from __future__ import annotations

import itertools
import logging
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from snapmixin.store.objstore import Got, Requests

_BUCKETS = itertools.count(1)


class S3Server:
    """moto's ThreadedMotoServer on 127.0.0.1 (a free port), with what obstore needs to reach it."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment obstore reads (as a user's shell would set it)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}

    @property
    def options(self) -> dict[str, Any]:
        """The same as ``storage_options=`` of a SnapStore."""
        return {"endpoint": self.endpoint, "access_key_id": "testing", "secret_access_key": "testing",
                "region": "us-east-1", "client_options": {"allow_http": True}}

    def new_bucket(self) -> str:
        name = f"snap-{next(_BUCKETS)}"
        req = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
        return name

    def stop(self) -> None:
        self.server.stop()


class InjectedFault(TimeoutError):
    """What the faulty wrapper raises (a timeout: the client does not know what happened)."""


@dataclass
class Fault:
    """One planned fault: on the ``nth`` matching request (1 = the next one)."""

    method: str  # "put", "get", "get_tail", "delete", "list_under", "list_top", "head"
    name: str | None  # the object name (None: any)
    when: str  # "before": fail without sending; "after": send (the server applies), then fail;
    #            "slow": send, run ``meanwhile`` before the answer arrives, then answer
    times: int = 1
    meanwhile: Callable[[], None] | None = None
    error: Callable[[], BaseException] = field(default=lambda: InjectedFault("injected timeout"))


class FaultyRequests(Requests):
    """A :class:`Requests` that fails the planned requests and logs every one (method, name)."""

    def __init__(self, inner: Requests) -> None:
        self.__dict__.update(inner.__dict__)
        self.inner = inner
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str]] = []
        self._mutex = threading.Lock()

    def plan(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def _call(self, method: str, name: str, real: Callable[[], Any]) -> Any:
        with self._mutex:
            self.log.append((method, name))
            fault = next((f for f in self.faults if f.method == method and f.name in (None, name)
                          and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
        if fault is None:
            return real()
        if fault.when == "before":
            raise fault.error()
        try:
            result = real()
        finally:  # the answer (or the error) arrives only after the world moved on
            if fault.meanwhile is not None:
                fault.meanwhile()
        if fault.when == "after":
            raise fault.error()
        return result

    def get(self, name: str, *, if_none_match: str | None = None, limit: int | None = None) -> Got:
        return self._call("get", name, lambda: self.inner.get(name, if_none_match=if_none_match,
                                                              limit=limit))  # type: ignore[no-any-return]

    def get_tail(self, name: str, n: int) -> Got:
        return self._call("get_tail", name, lambda: self.inner.get_tail(name, n))  # type: ignore[no-any-return]

    def head(self, name: str) -> Got:
        return self._call("head", name, lambda: self.inner.head(name))  # type: ignore[no-any-return]

    def put(self, name: str, data: bytes, mode: Any = None) -> tuple[str | None, str | None]:
        return self._call("put", name, lambda: self.inner.put(name, data, mode))  # type: ignore[no-any-return]

    def delete(self, name: str) -> None:
        self._call("delete", name, lambda: self.inner.delete(name))

    def list_under(self, prefix: str) -> list[str]:
        return self._call("list_under", prefix, lambda: self.inner.list_under(prefix))  # type: ignore[no-any-return]

    def list_top(self) -> tuple[list[str], list[str]]:
        return self._call("list_top", "", self.inner.list_top)  # type: ignore[no-any-return]

    def methods(self) -> list[str]:
        return [m for m, _ in self.log]


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of the S3 server that answers chosen PUTs of
    ``snapshot.json`` itself, so the faults reach obstore's real HTTP client:

    - ``"409"``: S3's ``409 ConditionalRequestConflict`` without forwarding (nothing applied);
    - ``"500"``: forward (the server applies it), then answer ``500 InternalError``.

    ``plan`` is consumed one fault per matching PUT; every other request is forwarded as is."""

    def __init__(self, upstream: str) -> None:
        import http.client
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        up = urlsplit(upstream)
        self.plan: list[str] = []
        self.answered: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "date",
                                         "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD" and status not in (204, 304):
                    self.wfile.write(body)

            def _error(self, status: int, code: str) -> None:
                body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                        f"<Message>{code} (injected by the test proxy)</Message></Error>").encode()
                self._reply(status, [("Content-Type", "application/xml")], body)

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = None
                if self.command == "PUT" and self.path.split("?")[0].endswith("/snapshot.json"):
                    with proxy._mutex:
                        fault = proxy.plan.pop(0) if proxy.plan else None
                        if fault is not None:
                            proxy.answered.append(fault)
                if fault == "409":
                    self._error(409, "ConditionalRequestConflict")
                    return
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=30)
                try:
                    conn.request(self.command, self.path, body, headers=dict(self.headers.items()))
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                if fault == "500":
                    self._error(500, "InternalError")
                    return
                self._reply(resp.status, resp.getheaders(), data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._mutex = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
