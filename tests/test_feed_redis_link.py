"""The Redis feed's link: it hears every message, drops what is not one, and notices a dead server.

The listener reads its own connection directly (not redis-py's ``PubSub``), so
these tests hold it to what ``PubSub`` gave: a subscription confirmed before
anything is vouched for, resubscription after a loss, and no message that can
take the link down. Each test runs its own ``redis-server`` on a free loopback
port, so stopping it touches no one else's data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis._parsers import _RESP2Parser, _RESP3Parser
from redis.utils import HIREDIS_AVAILABLE

from hybrid_sessions.feeds import Feed, message, redis_listener
from hybrid_sessions.knowledge import GONE, knowledge
from tests.test_hybrid_processes import _free_port
from tests.waiting import eventually

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


#: Both protocols, each with the C parser and redis-py's own (a site may lack hiredis).
LINKS: dict[str, dict[str, Any]] = {
    "resp2": {"protocol": 2},
    "resp3": {"protocol": 3},
    "resp2-python-parser": {"protocol": 2, "parser_class": _RESP2Parser},
    "resp3-python-parser": {"protocol": 3, "parser_class": _RESP3Parser},
}


#: redis-py before 6.2 drops RESP3 pushes (subscriptions, messages) when a site forces its
#: Python parser while hiredis is installed: its own ``PubSub`` hears nothing there either.
PUSHES_DROPPED = HIREDIS_AVAILABLE and tuple(map(int, redis.__version__.split(".")[:2])) < (6, 2)


@pytest.fixture(params=list(LINKS))
def server(request: Any) -> Iterator[tuple[subprocess.Popen[bytes], redis.Redis[bytes]]]:
    if request.param == "resp3-python-parser" and PUSHES_DROPPED:
        pytest.skip(f"redis-py {redis.__version__} drops RESP3 pushes for this parser")
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(connection_pool=redis.ConnectionPool(
        port=port, socket_connect_timeout=2, **LINKS[request.param]
    ))
    try:
        assert eventually(lambda: _answers(client), within=10), "redis-server did not start"
        yield process, client
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(10)


@pytest.fixture
def feed(server: tuple[subprocess.Popen[bytes], redis.Redis[bytes]]) -> Iterator[Feed]:
    _, client = server
    channel = f"hs-test-feed-{secrets.token_hex(4)}"
    listening = Feed(channel, redis_listener(lambda: client, channel))
    listening.ensure_running()
    assert listening.wait_until_up()
    try:
        yield listening
    finally:
        listening.stop()


def _answers(client: redis.Redis[bytes]) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _digest() -> str:
    return secrets.token_hex(32)


def test_each_published_version_and_end_is_learned(
    server: tuple[subprocess.Popen[bytes], redis.Redis[bytes]], feed: Feed
) -> None:
    _, client = server
    digest = _digest()
    client.publish(feed.name, message(digest, 3))
    assert eventually(lambda: (knowledge.lookup(digest) or (0, 0))[0] == 3)
    client.publish(feed.name, message(digest, GONE))
    assert eventually(lambda: (knowledge.lookup(digest) or (1, 0))[0] == GONE)
    assert feed.stats.messages == 2


def test_bytes_that_are_not_a_message_are_dropped_and_the_link_stays_up(
    server: tuple[subprocess.Popen[bytes], redis.Redis[bytes]], feed: Feed
) -> None:
    _, client = server
    for junk in (b"\xff\xfe\x00", b"", b"x" * 70_000, message("A" * 64, 1).encode(),
                 message(_digest(), 1).encode() + b"\n"):
        client.publish(feed.name, junk)
    digest = _digest()
    client.publish(feed.name, message(digest, 7))
    assert eventually(lambda: (knowledge.lookup(digest) or (0, 0))[0] == 7)
    assert feed.stats.malformed == 5
    assert (feed.stats.connects, feed.stats.failures) == (1, 0)


def test_an_idle_link_stays_up_and_one_that_stops_answering_is_dropped_until_back(
    server: tuple[subprocess.Popen[bytes], redis.Redis[bytes]], feed: Feed
) -> None:
    process, client = server
    time.sleep(2.5)  # two idle polls, each PING answered
    assert (feed.stats.connects, feed.stats.failures) == (1, 0)
    first_since = feed.since
    os.kill(process.pid, signal.SIGSTOP)  # the socket stays open: only PING can tell
    try:
        # One idle poll sends PING; the next finds no answer and drops the link.
        assert eventually(lambda: feed.since is None, within=5)
        assert feed.stats.failures >= 1
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert eventually(lambda: feed.since is not None, within=15)
    assert (feed.since or 0.0) > (first_since or float("inf"))  # a new subscription
    digest = _digest()
    client.publish(feed.name, message(digest, 2))
    assert eventually(lambda: (knowledge.lookup(digest) or (0, 0))[0] == 2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with a thread: the point
@pytest.mark.parametrize("server", ["resp3"], indirect=True)
def test_a_forked_worker_listens_on_its_own_thread(
    server: tuple[subprocess.Popen[bytes], redis.Redis[bytes]], feed: Feed
) -> None:
    """gunicorn forks workers after the parent listened: the parent's thread is not theirs."""
    _, client = server
    digest = _digest()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            fresh = feed.since is None  # what the parent heard stops at the fork
            feed.ensure_running()
            if fresh and feed.wait_until_up(10):
                client.publish(feed.name, message(digest, 4))
                heard = eventually(lambda: (knowledge.lookup(digest) or (0, 0))[0] == 4, within=5)
                code = 0 if heard and feed.stats.messages == 1 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert feed.since is not None  # the parent's own thread still listens
    assert eventually(lambda: (knowledge.lookup(digest) or (0, 0))[0] == 4)
