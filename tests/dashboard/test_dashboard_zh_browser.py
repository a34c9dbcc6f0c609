"""The dashboard in Chinese in a real browser, on the demo shop: a zh-CN browser gets it in
Chinese, the header's language switcher changes it for good (a cookie), and a screenshot of
it is saved as dashboard-zh.png (docs/screenshots/ holds the one the README may show).

It borrows tests/demo/test_browser.py's machinery: the demo shop committed once for the
module, Chromium through Playwright, tabs that fail the test on JavaScript errors."""

import pytest

from tests.demo.test_browser import (  # noqa: F401 (fixtures)
    browser,
    demo,
    login,
    new_page,
    production_access,
    superuser,
    transactional_db,
)

pytestmark = pytest.mark.browser

HEADINGS = [
    ("Events per day", "每日事件数"),
    ("Encoder spaces", "向量空间"),
    ("Queues and workers", "队列与工作进程"),
    ("Top items by engagement, last 30 days", "最近 30 天互动最多的物品"),
]


def assert_language(tab, chinese: bool) -> None:
    text = tab.text_content("#content")
    for english, zh in HEADINGS:
        assert (zh in text) is chinese and (english in text) is not chinese, (english, zh)


def test_the_dashboard_in_chinese_and_the_language_switcher(new_page, superuser):  # noqa: F811
    page = new_page(locale="zh-CN")
    login(page, superuser)
    tab = page.open("/admin/dashboard/")
    assert tab.get_attribute("html", "lang") == "zh-hans"
    assert tab.text_content("#content h1") == "推荐运营看板"
    assert_language(tab, chinese=True)
    assert tab.locator("[data-testid=top-items] tbody tr").count() == 10  # the demo's data

    # The browser asks for Chinese, the operator picks English: the choice sticks.
    tab.select_option("#language-select", "en")
    tab.click("#language-switcher input[type=submit]")
    tab.wait_for_url("**/admin/dashboard/")
    assert_language(tab, chinese=False)
    assert tab.get_attribute("html", "lang") == "en"
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    assert cookies["django_language"] == "en"
    tab = page.open("/admin/")
    assert "Site administration" in tab.text_content("#content")

    tab = page.open("/admin/dashboard/")
    tab.select_option("#language-select", "zh-hans")
    tab.click("#language-switcher input[type=submit]")
    tab.wait_for_url("**/admin/dashboard/")
    assert_language(tab, chinese=True)
    page.screenshot("dashboard-zh.png")
