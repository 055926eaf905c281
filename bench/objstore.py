#!/usr/bin/env python3
"""SnapStore on object storage: create()/restore() against a bare obstore put/get of the same bytes,
and the requests each one makes.

    python bench/objstore.py            # about 30 s
    python bench/objstore.py --quick    # fewer, shorter rounds

Starts moto's S3 server on 127.0.0.1 (a free port; needs the test extra) and makes one bucket.
Each round times, in A B B A order, ``create()`` (keep=1, a warm store object: what a program
that snapshots repeatedly does) against ``obstore.put`` of the same envelope bytes, and
``restore()`` (by another store object than the writer's) against ``obstore.get`` of them.
Each cell is the median of ``--ops`` calls; a row reports the median (min-max) over
``--repeat`` rounds of each side and of the per-round ratio. Then it counts the requests of
one ``create()`` at keep=1 and keep=3 (steady state, after a few creates) and of one
``restore()``, through the backend's request object. A local S3 emulator answers in well under
a millisecond; a real S3 round trip is 10-50 ms, where the ratio is set by the request counts.
This script measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

# Measure this checkout, not whatever snapmixin happens to be installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _env import code_version, cpu_model


def start_server() -> tuple[Any, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT")) as r:
        r.read()
    return server, endpoint


def median_ms(fn: Callable[[], Any], ops: int) -> float:
    times = []
    for _ in range(ops):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


class Counter:
    """Wraps a backend's request object and counts the requests by kind."""

    def __init__(self, backend: Any) -> None:
        self.calls: list[str] = []
        inner = backend.requests
        for name in ("get", "get_tail", "head", "put", "delete", "list_under", "list_top"):
            real = getattr(inner, name)

            def wrapped(*a: Any, _real: Any = real, _name: str = name, **k: Any) -> Any:
                self.calls.append(_name)
                return _real(*a, **k)

            setattr(inner, name, wrapped)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="rounds (default 7)")
    ap.add_argument("--ops", type=int, default=60, help="calls per cell per round (default 60)")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 20 calls")
    args = ap.parse_args()
    if args.quick:
        args.repeat, args.ops = 3, 20

    import obstore
    from obstore.store import from_url

    from snapmixin import SnapStore

    server, _endpoint = start_server()
    try:
        state = {"level": 7, "player": "ada", "inventory": [f"item-{i}" for i in range(40)],
                 "stats": {f"k{i}": i * 1.5 for i in range(40)}}
        url = "s3://bench/run"
        store = SnapStore(url)
        seq = [0]

        def create() -> None:
            seq[0] += 1
            store.create(state, seq[0])

        create()
        envelope = bytes(store.backend.read("snapshot.json"))
        bare = from_url("s3://bench/bare")

        def put() -> None:
            obstore.put(bare, "snapshot.json", envelope)

        put()

        reader = SnapStore(url)  # another store object than the writer's, built once (like `bare`)

        def restore() -> None:
            reader.restore()

        def get() -> None:
            bytes(obstore.get(bare, "snapshot.json").bytes())

        pairs = [("create() keep=1 vs put", create, put), ("restore() vs get", restore, get)]
        rows: dict[str, tuple[list[float], list[float], list[float]]] = {p[0]: ([], [], []) for p in pairs}
        for r in range(args.repeat):
            order = pairs if r % 2 == 0 else pairs[::-1]
            for label, a, b in order:
                ta = median_ms(a, args.ops)
                tb = median_ms(b, args.ops)
                tb2 = median_ms(b, args.ops)
                ta2 = median_ms(a, args.ops)
                sa, sb, ratio = rows[label]
                sa.append((ta + ta2) / 2)
                sb.append((tb + tb2) / 2)
                ratio.append(sa[-1] / sb[-1])

        counts: list[tuple[str, list[str]]] = []
        for keep in (1, 3):
            s = SnapStore(f"s3://bench/count{keep}", keep=keep)
            for n in range(1, 6):
                s.create(state, n)
            c = Counter(s.backend)
            s.create(state, 6)
            counts.append((f"create() keep={keep}", c.calls))
        cold = SnapStore("s3://bench/count3-cold", keep=3)
        c = Counter(cold.backend)
        cold.create(state, 1)
        counts.append(("first create() of a new store object, empty prefix", c.calls))
        r_store = SnapStore("s3://bench/count1")
        c = Counter(r_store.backend)
        r_store.restore()
        counts.append(("restore()", c.calls))
    finally:
        server.stop()

    def cell(xs: list[float], unit: str = " ms") -> str:
        return f"{statistics.median(xs):.2f}{unit} ({min(xs):.2f}-{max(xs):.2f})"

    print(f"snapmixin object storage, {dt.date.today()}, {platform.python_implementation()} "
          f"{platform.python_version()}, {cpu_model()}; obstore {importlib.metadata.version('obstore')}, "
          f"moto {importlib.metadata.version('moto')} on 127.0.0.1; {code_version()}")
    print(f"state: {len(envelope)} bytes of envelope; {args.repeat} rounds x {args.ops} calls, A B B A\n")
    print("| operation | snapmixin | bare obstore | ratio |")
    print("|---|---|---|---|")
    for label, _, _ in pairs:
        sa, sb, ratio = rows[label]
        print(f"| {label} | {cell(sa)} | {cell(sb)} | {cell(ratio, 'x')} |")
    print("\n| call | requests | which |")
    print("|---|---|---|")
    for label, calls in counts:
        print(f"| {label} | {len(calls)} | {', '.join(calls)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
