"""Re-make the README's screenshots from the running demo.

Run by hand:  .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Uses its own data dir (.recsite/screenshots-demo, so the developer's own demo is left
alone) with DEBUG=1 and API keys off, as scripts/demo.sh runs the demo. It migrates, loads
the demo shop (``manage.py load_demo``, embedded with the default encoder), creates the demo
admin (``manage.py demo_admin``: admin / recsite-demo), trains the ranker, runs a small
offline evaluation (``manage.py evaluate --max-users 40``) so the dashboard's evaluation
section has figures, and lets simulated shoppers (recommender/demo/simulator.py) browse the
API in this process (the storefront placement, and a small A/B experiment on "sim-home") so
the online section has figures. Then it starts gunicorn and takes full-page Playwright
screenshots in Chromium at a 1360-wide viewport:

* storefront.png     the storefront home in Chinese
* storefront-en.png  the same in English
* dashboard.png      the admin dashboard, logged in as the demo admin

Every server it started (gunicorn, and the embedded PostgreSQL and Redis when this run
started them) is stopped at the end, however it ends. Later runs reuse the loaded shop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".recsite" / "screenshots-demo"
sys.path.insert(0, str(ROOT))
from recsite import testing  # noqa: E402

HIGH = "1000000/min"
testing.use_data_dir(
    DATA_DIR,
    DEBUG="1",
    RECOMMENDER_REQUIRE_API_KEY="0",
    **{
        f"RECOMMENDER_{scope}_RATE": HIGH for scope in ("API", "RECOMMENDATIONS", "EVENTS", "BATCH")
    },
)

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
VIEWPORT = {"width": 1360, "height": 900}
TIMEOUT_MS = 30_000
SHOPPER = "u-0002"
ADMIN = ("admin", "recsite-demo")  # manage.py demo_admin's published demo login


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder")
    parser.add_argument("--shoppers", type=int, default=80, help="simulated shoppers")
    return parser.parse_args()


def step(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:5.0f}s] {message}", flush=True)


def prepare(shoppers: int, started: float) -> None:
    """The demo shop, its admin, an offline evaluation and some online traffic."""
    from django.core.management import call_command
    from django.db import connections

    from recommender.demo.simulator import Simulator
    from recommender.models import Experiment, Item, Scenario, Variant
    from recommender.serving import experiments, served_lists

    call_command("migrate", "--noinput", verbosity=0)
    if not Item.objects.exists():
        step("loading the demo shop (load_demo)", started)
        call_command("load_demo", verbosity=0)
    call_command("demo_admin")
    step("training the ranker", started)
    try:
        call_command("train_ranker", "--max-users", "72", "--no-progress", verbosity=0)
    except Exception as exc:  # noqa: BLE001 - the fixed blend serves without it, as in demo.sh
        print(f"(ranker not trained: {exc}; the fixed blend serves)")
    step("offline evaluation", started)
    call_command("evaluate", "--max-users", "40", "--no-progress", verbosity=0)

    step(f"simulated traffic ({shoppers} shoppers)", started)
    stamp = int(time.time())
    Scenario.objects.get_or_create(name="home")  # a plain placement: the pipeline's defaults
    Simulator("home", seed=stamp % 1000).run(shoppers, 2, prefix=f"shot{stamp}")
    # A small A/B experiment, so the online section has variants to compare.
    Experiment.objects.filter(scenario__name="sim-home", is_running=True).update(is_running=False)
    scenario, _ = Scenario.objects.get_or_create(name="sim-home")
    experiment = Experiment.objects.create(name=f"full-vs-popular-{stamp}", scenario=scenario)
    configs = {"control": {"sources": ["popular"], "use_learned_ranker": False}, "treatment": {}}
    for position, (variant, config) in enumerate(configs.items()):
        configuration, _ = Scenario.objects.update_or_create(
            name=f"{experiment.name}-{variant}", defaults=config
        )
        Variant.objects.create(
            experiment=experiment, name=variant, share=1, configuration=configuration,
            position=position,
        )  # fmt: skip
    experiments.start(experiment)
    Simulator("sim-home", seed=stamp % 1000 + 1).run(shoppers, 2, prefix=f"shot{stamp}-ab")
    served_lists.drain()
    connections.close_all()  # no ORM inside Playwright's loop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shoot(base_url: str, out: Path) -> list[Path]:
    """The three screenshots, through Chromium."""
    from playwright.sync_api import sync_playwright

    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        raise SystemExit(f"Chromium not found at {CHROMIUM}: run scripts/install_browser.sh")
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            for lang, locale, name in (("zh", "zh-CN", "storefront.png"),
                                       ("en", "en-US", "storefront-en.png")):  # fmt: skip
                context = browser.new_context(
                    viewport=VIEWPORT, locale=locale, device_scale_factor=1
                )
                context.add_init_script(
                    f"localStorage.setItem('recsite.storefront.user', {SHOPPER!r});"
                    f"localStorage.setItem('recsite.storefront.lang', {lang!r});"
                )
                tab = context.new_page()
                tab.set_default_timeout(TIMEOUT_MS)
                tab.goto(base_url + "/")
                tab.wait_for_function(
                    """() => {
                        const grid = document.querySelector("[data-testid=recommendations]");
                        return grid && Number(grid.dataset.version) > 0
                            && grid.dataset.state === "ready";
                    }"""
                )
                tab.wait_for_load_state("networkidle")
                made.append(out / name)
                tab.screenshot(path=str(made[-1]), full_page=True)
                context.close()

            context = browser.new_context(viewport=VIEWPORT, locale="en-US", device_scale_factor=1)
            tab = context.new_page()
            tab.set_default_timeout(TIMEOUT_MS)
            tab.goto(base_url + "/admin/login/?next=/admin/dashboard/")
            tab.fill("#id_username", ADMIN[0])
            tab.fill("#id_password", ADMIN[1])
            tab.click("[type=submit]")
            tab.wait_for_url("**/admin/dashboard/**")
            tab.wait_for_load_state("networkidle")
            made.append(out / "dashboard.png")
            tab.screenshot(path=str(made[-1]), full_page=True)
            context.close()
        finally:
            browser.close()
    return made


def main() -> None:
    args = parse_args()
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        raise SystemExit(
            "unset DATABASE_URL and CELERY_BROKER_URL: this script uses its own servers"
        )
    out = Path(args.out).resolve()
    started = time.monotonic()
    with testing.own_services(DATA_DIR):
        import django

        django.setup()
        prepare(args.shoppers, started)
        port = free_port()
        step(f"starting gunicorn on 127.0.0.1:{port}", started)
        web = testing.start_gunicorn(
            testing.environ(), DATA_DIR / "logs" / "screenshots-gunicorn.log", port=port
        )
        with testing.running(web):
            step("taking screenshots", started)
            made = shoot(f"http://127.0.0.1:{port}", out)
    step("done; servers stopped", started)
    for path in made:
        print(f"  {path}")


if __name__ == "__main__":
    main()
