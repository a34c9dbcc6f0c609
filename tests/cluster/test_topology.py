"""The multi-node topology end to end: serving reads on the standby, writes on the primary
with read-your-writes, a standby that lags or stops, a worker node killed mid-embedding.

Every piece is a real server reached by URL (tests/cluster/conftest.py); nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from recsite import testing
from recsite.testing import wait_for

# Also `worker`: real Celery workers, so `make test-fast` leaves the topology out.
pytestmark = [pytest.mark.cluster, pytest.mark.worker]

ITEMS = 1200
CATEGORIES = ["shoes", "coats", "books", "tea"]


@pytest.fixture(scope="module")
def shop(cluster):
    """Items (embedded in the hashing space, which serves) and two shoppers with history."""
    for start in range(0, ITEMS, 600):
        items = [
            {
                "id": f"sku-{n}",
                "title": f"{CATEGORIES[n % 4]} item {n}",
                "category": CATEGORIES[n % 4],
            }
            for n in range(start, start + 600)
        ]
        answer = cluster.call("POST", "/items/bulk", {"items": items})
        assert answer.status == 200, answer
    events = [
        {"user": user, "item": f"sku-{n}", "kind": "like"}
        for user, first in (("reader", 0), ("writer", 1))
        for n in range(first, 40, 4)
    ]
    assert cluster.call("POST", "/behaviours/batch", {"events": events}).status == 201
    wrote = time.monotonic()
    cluster.manage("encoder_space", "create", "hashing", "--plugin", "hashing",
                   "--option", "dim=64", "--inline")  # fmt: skip
    cluster.manage("encoder_space", "activate", "hashing")
    # Past the read-your-writes window of those events (max lag + check interval).
    time.sleep(max(0.0, wrote + cluster.window + 0.5 - time.monotonic()))
    return cluster


def test_lists_are_read_from_the_standby(shop):
    before = {server: shop.table_scans(server, settle=True) for server in ("primary", "standby")}
    served = {node: shop.requests_served(node) for node in shop.nodes}
    started = time.monotonic()
    for n in range(20):
        shop.listed("reader", node="web-a" if n % 2 else "web-b")
    took = time.monotonic() - started
    scans = {server: shop.table_scans(server, settle=True) - before[server] for server in before}
    # Each list reads several tables on the standby: 20 lists, many more than 20 scans;
    # the vector searches too (the helper thread's), so the primary reads next to nothing.
    assert scans["standby"] >= 20, scans
    assert scans["primary"] * 10 < scans["standby"], scans
    assert all(shop.requests_served(node) >= served[node] + 10 for node in shop.nodes)
    print(f"\n20 lists in {took:.2f} s; table scans: {scans}")


def _events(shop, user: str, node: str) -> list[tuple[str, str]]:
    answer = shop.call("GET", f"/behaviours?user={user}", node=node)
    assert answer.status == 200, answer
    return [(event["item"], event["kind"]) for event in answer.body["results"]]


def test_an_event_is_in_the_users_next_list_before_the_standby_has_it(shop):
    before = shop.listed("writer", node="web-a")
    liked = "sku-1001"  # in no list yet: a category and an item the writer never touched
    assert liked not in before
    # A fresh replayed write, then replay paused: the standby is current but frozen, well
    # within the lag limit for the next few seconds.
    shop.call("POST", "/behaviours", {"user": "other", "kind": "search", "text": "tea"})
    wait_for(lambda: _caught_up(shop), 10, "the standby to catch up")
    shop.sql("standby", "SELECT pg_wal_replay_pause()")
    try:
        answer = shop.call("POST", "/behaviours", {"user": "writer", "item": liked, "kind": "like"})
        assert answer.status == 201, answer
        # The writer's next list and history, from the other node, reflect the like ...
        after = shop.listed("writer", node="web-b")
        assert after != before and liked not in after
        assert _events(shop, "writer", "web-b")[0] == (liked, "like")
        # ... which the standby has not replayed:
        count = (
            "SELECT count(*) FROM recommender_behaviour b "
            "JOIN recommender_item i ON i.id = b.item_id "
            "JOIN recommender_enduser u ON u.id = b.user_id "
            "WHERE u.external_id = 'writer' AND i.external_id = %s"
        )
        assert shop.sql("standby", count, [liked])[0][0] == 0
        assert shop.sql("primary", count, [liked])[0][0] == 1
        # The control: without the "writer wrote" mark the same read is served by the
        # (usable, frozen) standby and misses the like.
        shop.forget_writes()
        assert (liked, "like") not in _events(shop, "writer", "web-b")
    finally:
        shop.sql("standby", "SELECT pg_wal_replay_resume()")


def _caught_up(shop) -> bool:
    received, replayed = shop.sql(
        "standby", "SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()"
    )[0]
    primary = shop.sql("primary", "SELECT pg_current_wal_lsn()")[0][0]
    return received == replayed == primary


def _lag(shop) -> float:
    query = "SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())"
    return float(shop.sql("standby", query)[0][0])


def test_a_standby_lagging_past_the_limit_serves_no_reads(shop):
    shop.sql("standby", "SELECT pg_wal_replay_pause()")
    try:
        # Writes the standby receives and does not replay: it falls behind.
        while _lag(shop) < shop.max_lag + 1:
            answer = shop.call("POST", "/behaviours", {"user": "other", "kind": "search",
                                                       "text": "tea"})  # fmt: skip
            assert answer.status == 201, answer
            time.sleep(0.5)
        time.sleep(shop.check_interval + 0.2)  # every process's last check is stale
        lag = _lag(shop)
        before = shop.table_scans("standby", settle=True)
        for n in range(10):
            shop.listed("reader", node="web-a" if n % 2 else "web-b")
        assert shop.table_scans("standby", settle=True) == before
        print(f"\nstandby {lag:.1f} s behind: 10 lists, none read there")
    finally:
        shop.sql("standby", "SELECT pg_wal_replay_resume()")


def test_a_standby_stopped_mid_run_costs_no_failed_request(shop):
    failures, served = [], []
    stop = threading.Event()

    def shopper(node: str) -> None:
        while not stop.is_set():
            answer = shop.call("GET", "/users/reader/recommendations?k=10", node=node)
            (served if answer.status == 200 else failures).append(answer)

    threads = [threading.Thread(target=shopper, args=(node,)) for node in shop.nodes]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(served) >= 10, 30, "lists before the stop")
        shop.pg_ctl("standby", "-m", "fast", "-w", "stop")
        at_stop = len(served)
        wait_for(lambda: len(served) >= at_stop + 20, 60, "lists after the stop")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    print(f"\nstandby stopped: {len(served) - at_stop} lists after it, none failed")
    shop.pg_ctl("standby", "-w", "start")  # back for whatever runs next


def test_a_worker_node_killed_mid_embedding_loses_nothing(shop):
    from celery import Celery

    space_id = int(
        shop.manage(
            "shell",
            "-c",
            "from recommender import spaces; print(spaces.create_space('slow', "
            "'tests.slow_encoder:SlowEncoder', {'dim': 32, 'delay': 0.5}).pk)",
        ).splitlines()[-1]
    )
    ids = [row[0] for row in shop.sql("primary", "SELECT id FROM recommender_item ORDER BY id")]
    sender = Celery(broker=shop.env["CELERY_BROKER_URL"], set_as_current=False)
    for start in range(0, len(ids), 50):
        sender.send_task(
            "recommender.embed_items", args=[space_id, ids[start : start + 50], False],
            queue="embed",
        )  # fmt: skip

    def vectors() -> int:
        return shop.sql(
            "primary", "SELECT count(*) FROM recommender_itemvector WHERE space_id = %s",
            [space_id],
        )[0][0]  # fmt: skip

    log = shop.directory / "embed-1" / "worker.log"

    def embed_1_busy() -> bool:  # a task received and not yet finished
        text = log.read_text()
        return text.count("embed_items[") > 2 * text.count("succeeded in")

    wait_for(lambda: vectors() > 0 and embed_1_busy(), 60, "embed-1 mid-task")
    pid = int((shop.directory / "embed-1" / "worker.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    at_kill = vectors()
    assert 0 < at_kill < len(ids)
    killed = time.monotonic()
    # embed-2 goes on with the queue. The task embed-1 held is redelivered once the
    # visibility timeout (6 s) has passed, by a worker's sweep of unacknowledged tasks:
    # a replacement node does one as it starts.
    time.sleep(6)
    replacement = testing.start_worker(
        shop.env,
        shop.directory / "embed-1b" / "worker.log",
        name="embed-1b",
        queues="embed",
        app=sender,
    )
    try:
        wait_for(lambda: vectors() == len(ids), 120, f"all vectors (had {at_kill} at the kill)")
    finally:
        replacement.stop()
    duplicates = shop.sql(
        "primary",
        "SELECT count(*) - count(DISTINCT item_id) FROM recommender_itemvector WHERE space_id = %s",
        [space_id],
    )[0][0]
    assert duplicates == 0
    survivor = (shop.directory / "embed-2" / "worker.log").read_text().count("succeeded in")
    assert survivor > 0
    print(
        f"\nembed-1 killed with {at_kill}/{len(ids)} vectors stored; all stored "
        f"{time.monotonic() - killed:.1f} s later; embed-2 finished {survivor} tasks"
    )
