"""The storefront, the admin dashboard and the API docs in a real browser.

Playwright drives Debian's Chromium (``scripts/install_browser.sh`` installs it) against
pytest-django's ``live_server``, with the demo shop loaded once for the module. Every test
saves a screenshot under .recsite/screenshots/ (or $RECSITE_SCREENSHOTS).

Two things differ from the rest of the suite, on purpose:

* ``live_server`` asks for ``transactional_db``, whose stock version truncates every table
  after each test and would throw away the demo shop (about 15 s to load and embed) after
  the first one. This module overrides ``transactional_db`` to open the database without
  that flush; the shop is committed once by ``demo`` and removed in its teardown, as
  tests/api/test_api.py does. pytest-django runs tests that use ``live_server`` after all
  plain ``db`` tests, so the module's data never meets theirs.
* Playwright's sync API runs the test inside the callbacks of an asyncio loop. Django
  refuses ORM calls there, and the connections they would open live in the loop's
  contexts, where nothing closes them (and an open one stops the test database from
  being dropped). So every database call here goes through ``orm()``, which runs it in a
  short-lived thread that closes its connection.
"""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connections
from django.test import Client

from recommender import spaces
from recommender.demo import load
from recommender.learning import evaluation, reports
from recommender.models import (
    Behaviour,
    EncoderSpace,
    EndUser,
    EvaluationRun,
    Item,
    ItemVector,
)
from recommender.serving import cooccurrence
from recommender.spaces import embedding

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
# Screenshots go to the data dir (docs/screenshots holds the ones the README shows).
SCREENSHOTS = Path(os.environ.get("RECSITE_SCREENSHOTS") or ROOT / ".recsite" / "screenshots")
CHROMIUM = os.environ.get("RECSITE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Anything not served by the live server is refused: the pages must work offline.
NOT_LOCAL = re.compile(r"^(?!https?://(localhost|127\.0\.0\.1)(:\d+)?/)")
TIMEOUT_MS = 20_000


def orm(function, *args, **kwargs):
    """Run ``function`` in a fresh thread with its own database connection, closed after."""

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


# --- Data ----------------------------------------------------------------------------------


def _load_demo():
    load.load()
    space = spaces.ensure_default_space()
    embedding.embed_items(space, list(Item.objects.values_list("pk", flat=True)))
    cooccurrence.refresh_cooccurrence()
    return space


def _remove_demo():
    for existing in EncoderSpace.objects.all():
        spaces.drop_index(existing)
    for model in (Behaviour, ItemVector, EncoderSpace, Item, EndUser):
        model.objects.all().delete()
    apps.get_model("recommender", "ItemCooccurrence").objects.all().delete()


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo shop, embedded in the default space, committed once for this module."""
    with django_db_blocker.unblock():
        space = orm(_load_demo)
        yield space
        orm(_remove_demo)


@pytest.fixture
def transactional_db(demo, django_db_blocker):
    """Database access for the test and the live server's threads, without the per-test
    flush of pytest-django's own ``transactional_db`` (see the module docstring)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture(autouse=True)
def production_access(settings):
    """The pages run as in production: DEBUG off (the suite's settings) and API keys
    required, so the storefront must use shopper tokens and the docs a staff login."""
    settings.RECOMMENDER_REQUIRE_API_KEY = True
    settings.RECOMMENDER_PUBLIC_API_DOCS = False
    assert not settings.DEBUG


def login(page, user) -> None:
    """Give the browser tab a staff session for ``user``."""
    client = Client()
    orm(client.force_login, user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": page.base_url}]
    )


@pytest.fixture
def superuser(transactional_db):
    user = orm(
        get_user_model().objects.create_superuser,
        "browser-admin",
        "browser-admin@example.com",
        "browser-pass-1",
    )
    yield user

    def remove():
        Session.objects.all().delete()
        user.delete()

    orm(remove)


def _evaluate(out: Path) -> EvaluationRun:
    cases = evaluation.leave_one_out(max_users=3)
    compared = [r for r in evaluation.baselines() if r.name in ("popular", "full")]
    report = evaluation.evaluate(
        cases, protocol="leave-one-out by time", ks=[10], recommenders=compared
    )
    run, _ = reports.record(report, {"max_users": 3, "source": "test_browser"}, out=out)
    return run


@pytest.fixture(scope="module")
def evaluation_run(demo, django_db_blocker, tmp_path_factory):
    """A real, small leave-one-out evaluation with its report folder and PNG charts."""
    with django_db_blocker.unblock():
        run = orm(_evaluate, tmp_path_factory.mktemp("evaluation"))
        yield run
        orm(EvaluationRun.objects.filter(pk=run.pk).delete)


# --- Browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(demo):
    """Chromium through Playwright; a readable failure (never a skip) when either is missing.

    It asks for ``demo`` so that the test database exists, and the shop is loaded, before
    Playwright's loop starts (Django will not create a database inside it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright is not installed: run `.venv/bin/pip install playwright` "
            "(it is in the dev extra: `.venv/bin/pip install -e '.[dev]'`).",
            pytrace=False,
        )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run `scripts/install_browser.sh` "
            "(apt-get install -y chromium fonts-noto-cjk), or set RECSITE_CHROMIUM to a "
            "Chromium binary.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
            )
        except Exception as exc:  # Playwright raises its own Error types
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc}", pytrace=False)
        yield launched
        launched.close()


class Page:
    """A browser tab on the live server that records page errors and refused requests."""

    def __init__(self, context, base_url: str):
        self.context = context
        self.base_url = base_url
        self.errors: list[str] = []
        self.refused: list[str] = []
        context.route(NOT_LOCAL, self._refuse)
        self.tab = context.new_page()
        self.tab.set_default_timeout(TIMEOUT_MS)
        self.tab.on("pageerror", lambda error: self.errors.append(str(error)))

    def _refuse(self, route):
        self.refused.append(route.request.url)
        route.abort()

    def open(self, path: str):
        self.tab.goto(self.base_url + path)
        return self.tab

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.tab.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def new_page(browser, live_server):
    """Opens tabs in fresh browser contexts (no cookies, no storage) in a given locale."""
    opened: list[Page] = []

    def open_page(locale: str = "zh-CN") -> Page:
        context = browser.new_context(
            viewport={"width": 1360, "height": 900}, locale=locale, device_scale_factor=1
        )
        opened.append(Page(context, live_server.url))
        return opened[-1]

    yield open_page
    for tab in opened:
        tab.context.close()
    for tab in opened:
        assert not tab.errors, f"JavaScript errors on the page: {tab.errors}"
        assert not tab.refused, f"the page tried to reach outside the live server: {tab.refused}"


@pytest.fixture
def page(new_page):
    return new_page()


# --- Storefront helpers ------------------------------------------------------------------------

ROW = "[data-testid=recommendations]"


def row_version(tab, grid: str = ROW) -> int:
    return int(tab.get_attribute(grid, "data-version") or 0)


def wait_for_row(tab, after: int, grid: str = ROW) -> None:
    """Wait until the grid has rendered a response newer than version ``after``."""
    tab.wait_for_function(
        """([selector, after]) => {
            const grid = document.querySelector(selector);
            return grid && Number(grid.dataset.version) > after && grid.dataset.state !== "loading";
        }""",
        arg=[grid, after],
    )
    assert tab.get_attribute(grid, "data-state") == "ready", tab.inner_text(grid)


def card_ids(tab, grid: str = ROW) -> list[str]:
    return tab.locator(f"{grid} [data-testid=rec-card]").evaluate_all(
        "cards => cards.map(card => card.dataset.itemId)"
    )


def card_titles(tab, grid: str = ROW) -> list[str]:
    return tab.locator(f"{grid} [data-testid=card-title]").all_inner_texts()


def open_shop(page: Page, user: str = "u-0002", lang: str = "zh", path: str = "/"):
    """The shop with its first list rendered, for ``user`` in ``lang`` (kept in localStorage,
    as the picker and the switch keep them)."""
    page.context.add_init_script(
        f"localStorage.setItem('recsite.storefront.user', {user!r});"
        f"localStorage.setItem('recsite.storefront.lang', {lang!r});"
    )
    tab = page.open(path)
    wait_for_row(tab, 0)
    assert tab.input_value("[data-testid=user-picker]") == user
    return tab


def switch_language(tab, lang: str) -> None:
    before = row_version(tab)
    tab.click(f"[data-testid=lang-switch] button[data-lang={lang}]")
    wait_for_row(tab, before)


# --- Tests: storefront -------------------------------------------------------------------------


def test_storefront_shows_recommendations_with_reasons(page):
    tab = open_shop(page, user="u-0002")
    cards = tab.locator(f"{ROW} [data-testid=rec-card]")
    assert cards.count() == 12
    reasons = tab.locator(f"{ROW} [data-testid=card-reason]").all_inner_texts()
    assert len(reasons) == 12 and all(text.strip() for text in reasons), reasons
    assert all(tab.locator(f"{ROW} [data-testid=card-blurb]").all_inner_texts())
    prices = tab.locator(f"{ROW} [data-testid=card-price]").all_inner_texts()
    assert all(price.startswith("¥") for price in prices), prices
    assert tab.inner_text("[data-testid=row-title]") == "为你推荐"
    assert "服装" in tab.inner_text("[data-testid=category-nav]")
    assert tab.get_attribute("[data-testid=intent-input]", "placeholder") == (
        "我最近在找一件外套，性价比高且质量好的"
    )
    page.screenshot("storefront.png")


def test_english_switch_translates_labels_titles_and_reasons(page):
    tab = open_shop(page, user="u-0002")
    switch_language(tab, "en")
    assert tab.inner_text("[data-testid=row-title]") == "Recommended for you"
    assert "Clothing" in tab.inner_text("[data-testid=category-nav]")
    titles = card_titles(tab)
    assert not any(re.search(r"[\u4e00-\u9fff]", title) for title in titles), titles
    reasons = tab.locator(f"{ROW} [data-testid=card-reason]").all_inner_texts()
    assert not any(re.search(r"[\u4e00-\u9fff]", text) for text in reasons), reasons
    page.screenshot("storefront-en.png")


def test_like_on_a_card_changes_the_row(page):
    tab = open_shop(page, user="u-0001")
    tab.click("[data-testid=new-user]")
    tab.fill("[data-testid=new-user-name]", "小林")
    before = row_version(tab)
    tab.click("[data-testid=new-user-create]")
    wait_for_row(tab, before)
    shopper = tab.input_value("[data-testid=user-picker]")
    assert shopper.startswith("shopper-")
    assert orm(EndUser.objects.filter(external_id=shopper).exists)
    first = card_ids(tab)

    before = row_version(tab)
    tab.locator(f"{ROW} [data-testid=rec-card]").first.locator("[data-testid=card-like]").click()
    wait_for_row(tab, before)

    after = card_ids(tab)
    assert first[0] not in after  # a liked item counts as seen
    assert after != first[1:] + after[len(first) - 1 :]  # not merely shifted up by one
    assert orm(
        Behaviour.objects.filter(
            user__external_id=shopper, item__external_id=first[0], kind="like"
        ).exists
    )
    assert tab.inner_text("[data-testid=toast]") == "已标记喜欢"
    page.screenshot("storefront-after-like.png")


@pytest.mark.parametrize(
    ("lang", "intent", "noun", "long"),
    [
        ("zh", "女性长款羽绒服", "羽绒服", ("长", "过膝")),
        ("en", "women's long down jacket", "Down Jacket", ("Long", "Knee-Length")),
    ],
)
def test_intent_puts_long_down_jackets_on_top(page, lang, intent, noun, long):
    def is_long_down_jacket(title):
        return noun in title and any(word in title for word in long)

    tab = open_shop(page, user="u-0003", lang=lang)
    assert not is_long_down_jacket(card_titles(tab)[0])

    before = row_version(tab)
    tab.fill("[data-testid=intent-input]", intent)
    tab.press("[data-testid=intent-input]", "Enter")
    wait_for_row(tab, before)

    titles = card_titles(tab)
    assert is_long_down_jacket(titles[0]), titles
    first_reason = tab.locator(f"{ROW} [data-testid=card-reason]").first
    assert "reason-intent" in first_reason.get_attribute("class")
    assert intent in tab.inner_text("[data-testid=row-title]")
    page.screenshot(f"storefront-intent-{lang}.png")


def _list_events(user: str, kind: str) -> list[tuple]:
    return list(
        Behaviour.objects.filter(user__external_id=user, kind=kind, recommendation_id__isnull=False)
        .order_by("position")
        .values_list("recommendation_id", "position", "item__external_id")
    )


def test_the_shop_reports_impressions_and_clicks_with_the_list_id(page, superuser):
    tab = open_shop(page, user="u-0005")
    shown = card_ids(tab)
    for _ in range(12):  # the snippet reports a card once it is on screen: scroll past all
        tab.mouse.wheel(0, 250)
        tab.wait_for_timeout(60)
    # The page reports what it showed: one impression per card, all naming the list.
    impressions = []
    for _ in range(50):
        impressions = orm(_list_events, "u-0005", "impression")
        if len(impressions) >= len(shown):
            break
        tab.wait_for_timeout(100)
    assert [item for _, _, item in impressions] == shown
    assert len({rid for rid, _, _ in impressions}) == 1
    assert [position for _, position, _ in impressions] == list(range(1, len(shown) + 1))
    # Opening the second card is a click on that list's item at position 2.
    tab.locator(f"{ROW} [data-testid=card-title]").nth(1).click()
    tab.wait_for_url("**/item/**")
    wait_for_row(tab, 0, grid="[data-testid=similar-items]")  # its list is served too
    clicks = []
    for _ in range(50):
        clicks = orm(_list_events, "u-0005", "click")
        if clicks:
            break
        tab.wait_for_timeout(100)
    assert clicks == [(impressions[0][0], 2, shown[1])]
    # The dashboard's online section counts them once the log is flushed.
    from recommender.serving import served_lists

    orm(served_lists.drain)
    login(page, superuser)
    dashboard = page.open("/admin/dashboard/")
    online = dashboard.locator("[data-testid=online]")
    row = online.locator("tbody tr").first.inner_text().split("\t")
    # The shop's list and the item page's similar items, their impressions, one click.
    scenario, lists, impressions_seen, clicks_seen = row[1], *map(int, row[2:5])
    assert (scenario, lists, clicks_seen) == ("—", 2, 1) and impressions_seen >= len(shown), row
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    online.screenshot(path=str(SCREENSHOTS / "online.png"))


def test_item_page_shows_details_and_similar_items(page):
    tab = page.open("/item/sku-00001/")
    wait_for_row(tab, 0, grid="[data-testid=similar-items]")
    assert tab.inner_text("[data-testid=item-title]") == "女士加长款保暖羽绒服"
    similar = card_titles(tab, grid="[data-testid=similar-items]")
    assert sum("羽绒服" in title for title in similar) >= 2, similar
    assert "sku-00001" not in card_ids(tab, grid="[data-testid=similar-items]")
    page.screenshot("item.png")


# --- Tests: admin dashboard and API docs ---------------------------------------------------------


def test_admin_dashboard_shows_coverage_and_runs_a_task(
    new_page, superuser, evaluation_run, celery_worker
):
    from recommender.tasks import heartbeat

    heartbeat.delay().get(timeout=30)  # the real worker reports in, as beat would make it
    # The admin follows the browser's language (tests/dashboard/test_dashboard_zh_browser.py
    # checks the Chinese console); this test reads the English one.
    page = new_page(locale="en-US")
    tab = page.open("/admin/login/?next=/admin/")
    tab.fill("#id_username", "browser-admin")
    tab.fill("#id_password", "browser-pass-1")
    tab.click("input[type=submit]")
    tab.click("[data-testid=dashboard-link] >> text=Dashboard")
    tab.wait_for_url("**/admin/dashboard/")

    coverage = tab.locator("[data-testid=coverage] tr[data-space=default]")
    assert coverage.locator("[data-testid=coverage-percent]").inner_text() == "100.0%"
    active = orm(Item.objects.filter(is_active=True).count)
    assert f"{active} / {active}" in coverage.inner_text()
    for queue in ("default", "embed"):
        depth = tab.get_attribute(f"[data-testid=queues] tr[data-queue={queue}]", "data-messages")
        assert depth.isdigit(), f"queue {queue}: {depth!r}"
    worker = tab.get_attribute("[data-testid=heartbeat]", "data-hostname")
    assert worker.startswith("pytest-"), worker  # the conftest worker's name
    metrics = tab.text_content("[data-testid=evaluation]")  # inner_text is upper-cased
    assert "ndcg@10" in metrics and "full" in metrics
    charts = tab.locator("[data-testid=evaluation-charts] img")
    assert charts.count() == 2
    assert charts.evaluate_all("images => images.every(img => img.naturalWidth > 100)")
    assert tab.locator("[data-testid=top-items] tbody tr").count() == 10

    tab.click("[data-testid=reembed-stale]")
    status = tab.locator("[data-testid=task-status]")
    status.locator(".rd-state[data-state=SUCCESS]").wait_for()
    assert re.search(r"[0-9a-f-]{36}", status.inner_text()), status.inner_text()
    page.screenshot("dashboard.png")


def test_dashboard_is_staff_only_and_serves_only_report_charts(
    page, superuser, evaluation_run, tmp_path
):
    http = page.context.request
    base = f"{page.base_url}/admin/dashboard"
    chart = f"{base}/runs/{evaluation_run.pk}/accuracy.png"
    assert http.get(f"{base}/", max_redirects=0).status == 302  # to the login page
    assert http.get(chart, max_redirects=0).status == 302

    login(page, superuser)
    response = http.get(chart)
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    assert response.body().startswith(b"\x89PNG")

    outside = tmp_path / "outside.png"
    outside.write_bytes(response.body())
    link = Path(evaluation_run.report_dir) / "escape.png"
    link.symlink_to(outside)
    try:
        for name in (
            "report.json",
            "%2E%2E",
            "..%2Faccuracy.png",
            "%2Fetc%2Fpasswd.png",
            link.name,
        ):
            url = f"{base}/runs/{evaluation_run.pk}/{name}"
            assert http.get(url).status == 404, name
    finally:
        link.unlink()
    assert http.get(f"{base}/actions/evaluate/").status == 405  # queueing is POST only


def test_swagger_ui_lists_the_endpoints_offline(page, superuser):
    assert page.context.request.get(f"{page.base_url}/api/docs/").status in (401, 403)
    login(page, superuser)  # with DEBUG off the docs are for keys and staff
    tab = page.open("/api/docs/")
    tab.locator(".opblock").nth(10).wait_for()
    paths = tab.locator(".opblock-summary-path").all_inner_texts()
    text = " ".join(path.replace("\u200b", "") for path in paths)
    for path in (
        "/api/v1/users/{id}/recommendations",
        "/api/v1/behaviours",
        "/api/v1/items/{id}/similar",
        "/api/v1/search",
    ):
        assert path in text, text
    page.screenshot("swagger.png", full_page=False)
