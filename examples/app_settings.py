"""App settings with pydantic and attrs, saved with SnapStore; snapmixin from asyncio; a pydantic
model as a Snapshottable; a transient lock.

    python examples/app_settings.py            # files go to a fresh temp directory
    python examples/app_settings.py --dir DIR  # or to DIR (run it again: it loads what it saved)

The mixin takes dataclasses and pydantic models (section 4); any other type
the codec knows (an attrs class, a msgspec Struct, plain JSON values) is
stored with a ``SnapStore`` directly, and so can a pydantic model (section 1):
``create(state, seq)`` to save, ``restore(Type)`` to load, validated by the
type's own library. In asyncio code use
``await store.acreate(...)`` / ``await store.arestore(...)`` and
``await obj.asnapshot()``: the file I/O (and its fsyncs) runs in a worker
thread, so the event loop is not blocked.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import attrs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from snapmixin import Snapshottable, SnapStore, snapshot_every, transient
from snapmixin.errors import DecodeError

Check = Callable[[bool, str], None]


class Window(BaseModel):
    width: int = Field(default=1024, ge=320)
    height: int = Field(default=768, ge=240)
    maximized: bool = False


class Settings(BaseModel):  # pydantic: validated on load as well as on assignment
    theme: Literal["light", "dark", "system"] = "system"
    font_size: int = Field(default=12, ge=6, le=72)
    recent_files: list[str] = []
    window: Window = Window()
    last_opened: datetime | None = None
    launches: int = 0


@attrs.define
class Session:  # attrs (through cattrs)
    open_tabs: list[str] = attrs.Factory(list)
    cursor: dict[str, int] = attrs.Factory(dict)


@dataclass
class Stats(Snapshottable):  # the mixin, used from async code
    requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)


class Prefs(Snapshottable, BaseModel):  # pydantic + the mixin: validated, tracked, saved
    # Validate assignments too: without it pydantic accepts volume=500, the snapshot saves it,
    # and the next open() refuses the file (restore always validates).
    model_config = ConfigDict(validate_assignment=True)
    volume: int = Field(default=50, ge=0, le=100)
    muted: bool = False
    shortcuts: dict[str, str] = {}


@snapshot_every(1)  # every counted change is saved at once
@dataclass
class Counters(Snapshottable):
    hits: dict[str, int] = field(default_factory=dict)
    # Not saved, not counted, rebuilt from its factory on open(): a lock cannot be JSON.
    lock: threading.Lock = transient(default_factory=threading.Lock)


def settings_demo(root: Path, check: Check) -> None:
    print("\n1. settings as a pydantic model, with SnapStore")
    store = SnapStore(root / "settings", keep=3)  # keeps the last 3 versions of the file
    if store.exists():
        settings, seq = store.restore(Settings)
        print(f"  loaded saved settings (seq {seq}): launch {settings.launches + 1}")
    else:
        settings, seq = Settings(), 0
        print("  first launch: default settings")

    settings.launches += 1
    settings.theme = "dark"
    settings.font_size = 14
    settings.window.maximized = True
    opened = f"chapter{settings.launches}.md"
    settings.recent_files = [opened, *(f for f in settings.recent_files if f != opened)][:5]
    settings.last_opened = datetime.now(timezone.utc)
    info = store.create(settings, seq + 1)  # durable when it returns
    print(f"  saved seq {info.seq}: theme={settings.theme}, font_size={settings.font_size}, "
          f"launches={settings.launches}")
    print(f"  {info.path} is plain JSON, for people too:")
    print("    " + info.path.read_text().strip().replace("\n", "\n    "))

    again, seq2 = store.restore(Settings)  # what the next launch sees
    check(again == settings and seq2 == info.seq, "the restored Settings equal the saved ones")
    check(len(store.history()) == min(info.seq, 3), "older versions kept in history/ (keep=3)")

    print("\n2. a settings file the model refuses (written by a buggy build: font_size 500)")
    bad = SnapStore(root / "settings-from-buggy-build")
    bad.create({"theme": "dark", "font_size": 500}, 1)
    try:
        bad.restore(Settings)
    except DecodeError as e:
        print(f"  DecodeError: {e}")
        check("font_size" in str(e), "the error names the bad field; the app can fall back to defaults")
    else:
        check(False, "a font_size of 500 should have been refused")


async def async_demo(root: Path, check: Check) -> None:
    print("\n3. asyncio: await store.acreate / arestore (attrs class) and await obj.asnapshot()")
    session_store = SnapStore(root / "session")
    session = Session(open_tabs=["notes.md", "todo.md"], cursor={"notes.md": 42})
    last = session_store.latest()  # header only: seq, time, size
    seq = (last.seq if last else 0) + 1

    stats = Stats.open(root / "stats")  # the mixin: the last snapshot or a new Stats()
    before = stats.requests

    async def handle(path: str) -> None:  # a pretend request handler
        await asyncio.sleep(0.01)
        stats.requests += 1
        stats.by_path[path] = stats.by_path.get(path, 0) + 1

    # Requests are served while the session is being saved: the fsyncs run in a thread.
    paths = ["/", "/docs", "/", "/api", "/"]
    saving = asyncio.create_task(session_store.acreate(session, seq))
    await asyncio.gather(*(handle(p) for p in paths))
    saved = await saving
    print(f"  session saved (seq {saved.seq}) while {len(paths)} requests were served")
    stats_seq = await stats.asnapshot()
    print(f"  stats saved (seq {stats_seq}): {stats.requests} requests, by path {stats.by_path}")

    restored, rseq = await session_store.arestore(Session)
    print(f"  session restored (seq {rseq}): {restored}")
    check(restored == session and rseq == seq, "the restored Session (attrs) equals the saved one")
    back = Stats.open(root / "stats")
    check(back == stats and back.requests == before + len(paths) and back.snapshot_seq == stats_seq,
          "the restored Stats equal the saved ones, seq included")


def mixin_demo(root: Path, check: Check) -> None:
    print("\n4. a pydantic model as a Snapshottable, and a dataclass with a transient lock")
    with Prefs.open(root / "prefs") as prefs:  # saved on a clean exit if anything changed
        prefs.volume = 80
        prefs.shortcuts["save"] = "ctrl+s"  # nested mutations count too
        try:
            prefs.volume = 500  # pydantic validates the assignment: refused, nothing counted
        except ValidationError:
            print("  volume=500 refused by pydantic; the object still says", prefs.volume)
        unsaved = prefs.snapshot_unsaved
    back = Prefs.open(root / "prefs")
    check(unsaved == 2 and back == prefs and back.volume == 80, "the pydantic Snapshottable came back")

    counters = Counters.open(root / "counters")
    def work(name: str) -> None:
        for _ in range(50):
            with counters.lock:  # the transient lock guards the object across threads
                counters.hits[name] = counters.hits.get(name, 0) + 1
    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = (root / "counters" / "snapshot.json").read_text()
    again = Counters.open(root / "counters")
    print(f"  counters saved at seq {again.snapshot_seq}: {again.hits}")
    check('"lock"' not in saved and again.hits == counters.hits and again.lock is not counters.lock,
          "the transient lock is not in the file, and open() gives a fresh one")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where the files go (default: a new temp directory)")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="snapmixin-settings-"))
    print(f"files go to {root}")
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"  {'ok' if ok else 'FAILED'}: {what}")
        if not ok:
            failures.append(what)

    settings_demo(root, check)
    asyncio.run(async_demo(root, check))
    mixin_demo(root, check)

    if failures:
        print(f"\nFAILED: {len(failures)} check(s) did not hold")
        return 1
    print(f"\nOK: everything came back as saved. Look: {sys.executable} -m snapmixin show {root}/settings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
