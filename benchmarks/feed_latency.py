"""How long until another process serves a new version, or refuses an ended session.

``python -m benchmarks.feed_latency [--trials 100] [--stores redis,postgresql]``

Process A writes (or ends) a hybrid session; process B is already reading the
same cookie in a loop, as a busy worker would. Each trial records the time from
A's ``save()`` (or ``delete()``) returning to B's first read that shows the new
value (or an empty session), on the system-wide monotonic clock. B hears of it
through the feed: Redis pub/sub, or PostgreSQL ``LISTEN``/``NOTIFY``.

Nothing outside this run is touched: PostgreSQL gets a database of its own,
created and dropped here; Redis keys carry a per-run prefix, removed at the end.
Everything talks to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.endtoend import latency
from benchmarks.report import table as list_table

#: Longest a trial waits for process B before counting it as not delivered.
TRIAL_TIMEOUT = 5.0
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "_static" / "feed_latency.json"
LABELS = {"redis": "Redis pub/sub", "postgresql": "PostgreSQL NOTIFY",
          "write": "a write", "end": "an end"}


def configure(store: str, database: str, prefix: str) -> None:
    """Django settings for one side of the run."""
    from django.conf import settings

    databases: dict[str, Any] = {
        "postgresql": {
            "ENGINE": "django.db.backends.postgresql", "NAME": database, "USER": "postgres",
            "HOST": "127.0.0.1", "PORT": "5432",
        },
        "redis": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
    settings.configure(
        SECRET_KEY="feed-latency-" + "x" * 40,
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth", "django.contrib.contenttypes", "hybrid_sessions",
        ],
        DATABASES={"default": databases[store]},
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": "redis://127.0.0.1:6379/0",
                "KEY_PREFIX": prefix,
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
            }
        },
        SESSION_ENGINE="hybrid_sessions.backends.hybrid",
        HYBRID_SESSIONS_SPILL_ENGINE=(
            "hybrid_sessions.backends.cache" if store == "redis" else "hybrid_sessions.backends.db"
        ),
    )
    import django

    django.setup()


def feed_up() -> None:
    from hybrid_sessions.backends.hybrid import SessionStore

    feed = SessionStore.get_store().feed()
    assert feed is not None, "this store has no feed"
    feed.ensure_running()
    if not feed.wait_until_up(10):
        raise SystemExit("the feed did not come up")


def reader() -> None:
    """Process B: for each line ``cookie<TAB>kind``, read until the change shows, then report."""
    from hybrid_sessions.backends.hybrid import SessionStore

    feed_up()
    print("ready", flush=True)
    feed = SessionStore.get_store().feed()
    assert feed is not None
    for line in sys.stdin:
        if line.startswith("stats"):
            stats = feed.stats
            print(json.dumps({"messages": stats.messages,
                              "handled_seconds": stats.handled_seconds,
                              "cpu_seconds": time.process_time()}), flush=True)
            continue
        cookie, kind = line.rstrip("\n").split("\t")
        # Serve the cookie once (as a worker would), then wait for the change.
        first = SessionStore(cookie).get("value")
        print(f"serving {first}", flush=True)
        deadline = time.monotonic() + TRIAL_TIMEOUT
        seen = None
        while time.monotonic() < deadline:
            session = SessionStore(cookie)
            value = session.get("value")
            if (kind == "write" and value == "new") or (kind == "end" and value is None):
                seen = time.monotonic()
                break
            time.sleep(0.0002)
        print(json.dumps({"seen": seen}), flush=True)


def writer(store: str, trials: int, database: str, prefix: str) -> dict[str, Any]:
    """Process A: start B, run the trials, return the figures."""
    from hybrid_sessions.backends.hybrid import SessionStore

    feed_up()
    env = {**os.environ, "FEED_LATENCY_ROLE": "reader", "FEED_LATENCY_STORE": store,
           "FEED_LATENCY_DATABASE": database, "FEED_LATENCY_PREFIX": prefix}
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.feed_latency"], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            raise SystemExit("process B did not start")
        figures: dict[str, list[float]] = {"write": [], "end": []}
        missed = {"write": 0, "end": 0}
        for trial in range(trials):
            kind = "write" if trial % 2 == 0 else "end"
            session = SessionStore()
            session["value"] = "old"
            session.save()
            cookie = session.cookie_value()
            assert cookie is not None
            child.stdin.write(f"{cookie}\t{kind}\n")
            child.stdin.flush()
            assert child.stdout.readline().startswith("serving old")
            time.sleep(0.02)  # B is now reading in its loop
            if kind == "write":
                session["value"] = "new"
                session.save()
            else:
                session.delete()
            done = time.monotonic()
            seen = json.loads(child.stdout.readline())["seen"]
            if seen is None:
                missed[kind] += 1
            else:
                figures[kind].append(max(0.0, seen - done) * 1000)
        load = _burst(child, SessionStore)
    finally:
        child.stdin.close()
        child.wait(10)
    summary: dict[str, Any] = {kind: _summary(v, missed[kind]) for kind, v in figures.items()}
    summary["load"] = load
    return summary


#: Writes in the burst that measures what the feed costs a listening process.
BURST = 2000


def _burst(child: subprocess.Popen[str], store: Any) -> dict[str, Any]:
    """A burst of writes from A: what handling their messages costs process B."""
    commands, answers = child.stdin, child.stdout
    assert commands is not None
    assert answers is not None

    def stats() -> dict[str, float]:
        commands.write("stats\n")
        commands.flush()
        return dict(json.loads(answers.readline()))

    session = store()
    session["value"] = 0
    session.save()
    before = stats()
    started = time.monotonic()
    for i in range(BURST):
        session["value"] = i + 1
        session.save()
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + TRIAL_TIMEOUT
    after = stats()
    while after["messages"] - before["messages"] < BURST and time.monotonic() < deadline:
        time.sleep(0.05)
        after = stats()
    heard = after["messages"] - before["messages"]
    return {
        "writes": BURST,
        "heard": int(heard),
        "writes_per_second": round(BURST / elapsed),
        "handling_us_per_message": round(
            1e6 * (after["handled_seconds"] - before["handled_seconds"]) / max(1, heard), 2
        ),
        "process_cpu_us_per_message": round(
            1e6 * (after["cpu_seconds"] - before["cpu_seconds"]) / max(1, heard), 2
        ),
    }


def _summary(values: list[float], missed: int) -> dict[str, Any]:
    return {"trials": len(values) + missed, "missed": missed, **latency(values, 3)}


def _postgres(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql],
                   check=True, capture_output=True)


def run_store(store: str, trials: int) -> dict[str, Any]:
    """One store, in a process of its own (Django is configured once per process)."""
    run_id = uuid.uuid4().hex[:10]
    database, prefix = f"hybrid_sessions_feed_{run_id}", f"feedlat{run_id}"
    if store == "postgresql":
        _postgres(f'CREATE DATABASE "{database}"')
    env = {**os.environ, "FEED_LATENCY_ROLE": "writer", "FEED_LATENCY_STORE": store,
           "FEED_LATENCY_DATABASE": database, "FEED_LATENCY_PREFIX": prefix,
           "FEED_LATENCY_TRIALS": str(trials)}
    try:
        out = subprocess.run([sys.executable, "-m", "benchmarks.feed_latency"], env=env,
                             check=True, capture_output=True, text=True, timeout=600)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        if store == "postgresql":
            _postgres(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        else:
            import redis

            client = redis.Redis(host="127.0.0.1", port=6379, db=0)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.unlink(*keys)


def child_main(role: str) -> None:
    store = os.environ["FEED_LATENCY_STORE"]
    database, prefix = os.environ["FEED_LATENCY_DATABASE"], os.environ["FEED_LATENCY_PREFIX"]
    configure(store, database, prefix)
    if role == "reader":
        reader()
        return
    if store == "postgresql":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    result = writer(store, int(os.environ["FEED_LATENCY_TRIALS"]), database, prefix)
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per kind (default 100)")
    parser.add_argument("--stores", default="redis,postgresql")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args()
    results = {store: run_store(store, 2 * args.trials) for store in args.stores.split(",")}
    loads = {store: kinds["load"] for store, kinds in results.items()}
    for store, kinds in results.items():
        load = kinds.pop("load")
        print(f"{store:11} burst of {load['writes']} writes at {load['writes_per_second']}/s: "
              f"{load['heard']} heard, {load['handling_us_per_message']} µs of handling and "
              f"{load['process_cpu_us_per_message']} µs of process CPU per message")
        for kind, figures in kinds.items():
            print(f"{store:11} {kind:6} p50 {figures['p50_ms']} ms  p99 {figures['p99_ms']} ms  "
                  f"max {figures['max_ms']} ms  ({figures['trials']} trials, "
                  f"{figures['missed']} not delivered within {TRIAL_TIMEOUT:.0f} s)")
    args.output.write_text(json.dumps({"latency": results, "load": loads}, indent=2) + "\n")
    args.output.with_suffix(".rst").write_text(table(results) + "\n" + load_table(loads))


def load_table(loads: dict[str, Any]) -> str:
    """What the feed costs a listening process, as reStructuredText."""
    return list_table("", [
        "Feed", "Writes per second in the burst", "Messages heard",
        "Handling per message (µs)", "Listener's CPU per message (µs)",
    ], [[LABELS.get(store, store), str(load["writes_per_second"]),
         f"{load['heard']} of {load['writes']}", str(load["handling_us_per_message"]),
         str(load["process_cpu_us_per_message"])] for store, load in loads.items()])


def table(results: dict[str, Any]) -> str:
    """The figures as the reStructuredText table the security page includes."""
    return list_table("", [
        "Feed", "Change", "p50 (ms)", "p99 (ms)", "max (ms)", "Trials (not delivered)",
    ], [[LABELS.get(store, store), LABELS.get(kind, kind), str(f["p50_ms"]), str(f["p99_ms"]),
         str(f["max_ms"]), f"{f['trials']} ({f['missed']})"]
        for store, kinds in results.items() for kind, f in kinds.items()])


if __name__ == "__main__":
    role = os.environ.get("FEED_LATENCY_ROLE")
    if role:
        child_main(role)
    else:
        main()
