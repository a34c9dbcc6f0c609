"""The browser snippet (clients/js/recsite.js) in the storefront, in a real browser.

The storefront renders the list and hands its cards to ``Recsite.observe``: only the cards
actually on screen (half visible) are reported as impressions, each once per list, with
the list's ``recommendation_id`` and their 1-based position; opening a card is a click on
that list's item. The fixtures (demo shop, live server, Chromium) are test_browser's.
"""

from __future__ import annotations

import uuid

import pytest

from recommender.models import Behaviour
from tests.demo.test_browser import (  # noqa: F401  (fixtures pytest finds by name)
    ROW,
    browser,
    card_ids,
    demo,
    new_page,
    open_shop,
    orm,
    page,
    production_access,
    transactional_db,
)

pytestmark = pytest.mark.browser

USER = "u-0007"

VISIBLE_POSITIONS = """grid => Array.from(grid.querySelectorAll("[data-testid=rec-card]"))
    .map((card, index) => {
        const box = card.getBoundingClientRect();
        const shown = Math.min(box.bottom, innerHeight) - Math.max(box.top, 0);
        return shown >= box.height * 0.5 ? index + 1 : 0;
    })
    .filter(Boolean)"""


def _events(user: str, kind: str) -> list[tuple]:
    return list(
        Behaviour.objects.filter(user__external_id=user, kind=kind, recommendation_id__isnull=False)
        .order_by("position", "pk")
        .values_list("recommendation_id", "position", "item__external_id", "event_id")
    )


def scroll(tab, dy: int, step: int = 250) -> None:
    """Scroll as a shopper does, a little at a time (each row passes through the view)."""
    for _ in range(abs(dy) // step):
        tab.mouse.wheel(0, step if dy > 0 else -step)
        tab.wait_for_timeout(60)


def wait_for_events(tab, kind: str, count: int) -> list[tuple]:
    """The user's events of ``kind`` once there are ``count`` of them (or after 6 s), and
    after a further debounce period, so that extra ones would have arrived too."""
    events: list[tuple] = []
    for _ in range(60):
        events = orm(_events, USER, kind)
        if len(events) >= count:
            break
        tab.wait_for_timeout(100)
    tab.wait_for_timeout(800)
    return orm(_events, USER, kind)


def test_snippet_reports_visible_impressions_once_and_attributes_a_click(page):  # noqa: F811
    tab = open_shop(page, user=USER)
    assert tab.evaluate("typeof window.Recsite.client") == "function"
    shown = card_ids(tab)
    assert len(shown) == 12
    grid = tab.locator(ROW)

    # At the top of the page only the first rows are on screen: only they are reported.
    visible = grid.evaluate(VISIBLE_POSITIONS)
    assert 0 < len(visible) < len(shown), visible
    impressions = wait_for_events(tab, "impression", len(visible))
    assert [position for _, position, _, _ in impressions] == visible
    rid = impressions[0][0]
    assert rid is not None and {r for r, _, _, _ in impressions} == {rid}
    assert [item for _, _, item, _ in impressions] == [shown[p - 1] for p in visible]
    for *_, event_id in impressions:
        uuid.UUID(event_id)  # the snippet's own idempotency keys

    # Scrolling down shows the rest; scrolling back up and down again reports nothing twice.
    scroll(tab, 3000)
    impressions = wait_for_events(tab, "impression", len(shown))
    scroll(tab, -3000)
    scroll(tab, 3000)
    impressions = wait_for_events(tab, "impression", len(shown))
    assert [position for _, position, _, _ in impressions] == list(range(1, len(shown) + 1))
    assert [item for _, _, item, _ in impressions] == shown
    assert {r for r, _, _, _ in impressions} == {rid}
    assert len({event_id for *_, event_id in impressions}) == len(shown)

    # Opening the last card is a click on that list's item at its position.
    assert orm(_events, USER, "click") == []
    tab.locator(f"{ROW} [data-testid=card-title]").nth(len(shown) - 1).click()
    tab.wait_for_url("**/item/**")
    clicks = wait_for_events(tab, "click", 1)
    assert [(r, position, item) for r, position, item, _ in clicks] == [
        (rid, len(shown), shown[-1])
    ]
    page.screenshot("storefront-snippet-item.png")


def test_snippet_flushes_when_the_page_is_hidden(page):  # noqa: F811
    tab = open_shop(page, user=USER)
    tab.evaluate(
        """() => {
            window.__posts = [];
            const original = window.fetch;
            window.fetch = (url, init) => {
                if (String(url).includes("/behaviours/batch")) window.__posts.push(init.keepalive);
                return original(url, init);
            };
        }"""
    )
    # A client with a long debounce: only the page being hidden sends its impressions.
    sent = tab.evaluate(
        """async () => {
            const rs = Recsite.client({
                baseUrl: document.body.dataset.api,
                token: () => fetch("/shop/token", {
                    method: "POST",
                    headers: {
                        "Content-Type": "application/json",
                        "X-CSRFToken": (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "",
                    },
                    body: JSON.stringify({user: "u-0007"}),
                }).then((r) => r.json()).then((b) => b.token),
                debounceMs: 60000,
            });
            const list = await rs.fetchList({user: "u-0007", k: 3, lang: "en"});
            const nodes = list.items.map((item) => {
                const node = document.createElement("div");
                node.style.height = "40px";
                node.textContent = item.id;
                document.body.prepend(node);
                return node;
            });
            nodes.reverse();  // prepended: the first item ends up on top
            scrollTo(0, 0);
            rs.observe(list, nodes);
            await new Promise((resolve) => setTimeout(resolve, 500));
            const before = window.__posts.length;
            const hidden = {value: "hidden", configurable: true};
            Object.defineProperty(document, "visibilityState", hidden);
            document.dispatchEvent(new Event("visibilitychange"));
            await new Promise((resolve) => setTimeout(resolve, 1000));
            return {before, after: window.__posts.slice(before), rid: list.recommendation_id};
        }"""
    )
    assert sent["after"] == [True], sent  # one keepalive batch, sent on hiding
    events = orm(
        lambda: list(
            Behaviour.objects.filter(
                user__external_id=USER, kind="impression", recommendation_id=sent["rid"]
            ).values_list("position", flat=True)
        )
    )
    assert sorted(events) == [1, 2, 3]
