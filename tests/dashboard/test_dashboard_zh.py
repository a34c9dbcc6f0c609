"""The operator console in Simplified Chinese: the dashboard, the scenario preview and the
experiment admin follow the language the admin user chose (Accept-Language, or the cookie
the header's language switcher sets), and the catalogue has no untranslated entry."""

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings

from recommender.models import EndUser, Experiment, Scenario, Variant
from tests.dashboard.test_dashboard import served  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

LOCALE = Path(settings.BASE_DIR) / "recommender" / "locale" / "zh_Hans" / "LC_MESSAGES"
DASHBOARD = "/admin/dashboard/"

# Headings every dashboard shows, whatever the data: (English, Chinese).
HEADINGS = [
    ("Recommender dashboard", "推荐运营看板"),
    ("Events per day", "每日事件数"),
    ("Queues and workers", "队列与工作进程"),
    ("Maintenance", "维护"),
    ("Re-embed stale items", "重新生成过期物品的向量"),
    ("Latest evaluation", "最新评估"),
    ("Online: served lists per scenario, last 14 days", "线上效果：最近 14 天各场景下发的列表"),
    ("Top items by engagement, last 30 days", "最近 30 天互动最多的物品"),
]


def assert_chinese(page: str, pairs) -> None:
    for english, chinese in pairs:
        assert chinese in page, chinese
        assert english not in page, english


def test_the_dashboard_speaks_chinese_to_a_zh_hans_admin(served, admin_client_zh):  # noqa: F811
    page = admin_client_zh.get(DASHBOARD).content.decode()
    assert '<html lang="zh-hans"' in page
    assert_chinese(page, HEADINGS)
    online = page[page.index('data-testid="online"') :]
    assert_chinese(
        online,
        [("CTR [95% CI]", "点击率 [95% 置信区间]"), ("impressions", "曝光"),
         ("Experiment variants", "实验变体"), ("Running experiments:", "运行中的实验：")],
    )  # fmt: skip
    assert "0.0% [" in online  # the figures themselves are unchanged
    assert "语言" in page and 'action="/i18n/setlang/"' in page  # the switcher


def test_the_dashboard_stays_english_by_default(admin_client):
    page = admin_client.get(DASHBOARD).content.decode()
    for english, chinese in HEADINGS:
        assert english in page and chinese not in page
    assert 'action="/i18n/setlang/"' in page and "简体中文" in page  # offered in the header


def test_the_language_chosen_in_the_header_sticks(client, admin_user):
    client.force_login(admin_user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"  # the browser asks for English
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": DASHBOARD})
    assert response.status_code == 302 and response.url == DASHBOARD
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    # The cookie outlives the request: later pages, any of them, stay in Chinese.
    assert_chinese(client.get(DASHBOARD).content.decode(), HEADINGS)
    assert "站点管理" in client.get("/admin/").content.decode()
    client.post("/i18n/setlang/", {"language": "en", "next": DASHBOARD})
    assert "Events per day" in client.get(DASHBOARD).content.decode()


def test_the_scenario_preview_in_chinese(admin_client_zh, hashing_space, make_items):
    make_items(2)
    EndUser.objects.create(external_id="alice")
    scenario = Scenario.objects.create(name="home", filter='category == "none"')
    url = f"/admin/recommender/scenario/{scenario.pk}/preview/"
    page = admin_client_zh.get(url, {"user": "alice"}).content.decode()
    assert_chinese(
        page,
        [("No item passes the rules for this user.", "没有物品能通过此用户的规则。"),
         ("User id", "用户 ID"), (">Filter<", "过滤规则"), (">score<", "分数"),
         (">reason<", "推荐理由")],
    )  # fmt: skip
    assert "home 的预览" in page
    change = admin_client_zh.get(f"/admin/recommender/scenario/{scenario.pk}/change/")
    assert "按用户预览此场景" in change.content.decode()
    assert "上架时间" in admin_client_zh.get("/admin/recommender/item/add/").content.decode()


def test_the_experiment_admin_in_chinese(admin_client_zh):
    home = Scenario.objects.create(name="home")
    test = Experiment.objects.create(name="home-test", scenario=home)
    Variant.objects.create(experiment=test, name="control", configuration=home)
    listing = admin_client_zh.get("/admin/recommender/experiment/").content.decode()
    assert_chinese(
        listing,
        [("Start the selected experiments", "开始所选实验"),
         ("Stop the selected experiments", "停止所选实验"), ("Promote the winner", "采用胜出变体")],
    )  # fmt: skip
    page = admin_client_zh.get(f"/admin/recommender/experiment/{test.pk}/change/")
    assert_chinese(
        page.content.decode(),
        [("revenue / 1000 impressions", "千次曝光收入"), ("p vs control", "相对对照组的 p 值"),
         ("traffic share", "流量占比")],
    )  # fmt: skip


# --- The catalogue -------------------------------------------------------------------------


def po_entries(path: Path) -> list[dict]:
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr[n], flags, sources."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry, key = {"flags": set(), "sources": [], "msgstr": []}, None
        for line in block.splitlines():
            if line.startswith("#~"):  # obsolete: no longer in the sources
                entry = None
                break
            if line.startswith("#,"):
                entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#:"):
                entry["sources"] += [ref.rsplit(":", 1)[0] for ref in line[2:].split()]
            elif match := re.match(
                r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?) "(.*)"$', line
            ):
                key = match.group(1)
                if key.startswith("msgstr"):
                    entry["msgstr"].append(match.group(2))
                else:
                    entry[key] = match.group(2)
            elif line.startswith('"') and key:
                if key.startswith("msgstr"):
                    entry["msgstr"][-1] += line[1:-1]
                else:
                    entry[key] += line[1:-1]
        if entry is not None and entry.get("msgid"):
            entries.append(entry)
    return entries


def unescape(text: str) -> str:
    escapes = {"\\\\": "\\", '\\"': '"', "\\n": "\n", "\\t": "\t"}
    return re.sub(r"\\.", lambda match: escapes[match.group(0)], text)


CONSOLE_FILES = {
    "recommender/admin.py",
    "recommender/models.py",
    "recommender/dashboard/views.py",
    "recommender/dashboard/queries.py",
    "recommender/templates/admin/recommender/dashboard.html",
    "recommender/templates/admin/recommender/scenario_preview.html",
    "templates/admin/base_site.html",
    "templates/admin/index.html",
}


def test_the_catalogue_translates_every_console_string():
    entries = po_entries(LOCALE / "django.po")
    console = [entry for entry in entries if CONSOLE_FILES & set(entry["sources"])]
    assert len(console) > 200
    assert [e["msgid"] for e in console if "fuzzy" in e["flags"]] == []
    assert [e["msgid"] for e in console if not all(e["msgstr"])] == []
    # The compiled catalogue is the one the .po describes (compilemessages was run).
    with (LOCALE / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for entry in console:
        msgid, msgstr = unescape(entry["msgid"]), unescape(entry["msgstr"][0])
        if "msgctxt" in entry:
            assert compiled.pgettext(unescape(entry["msgctxt"]), msgid) == msgstr
        elif "msgid_plural" in entry:
            assert compiled.ngettext(msgid, unescape(entry["msgid_plural"]), 2) == msgstr
        else:
            assert compiled.gettext(msgid) == msgstr, msgid
