"""Dashboard layout: the episodes and runs tables span their card on a laptop (the `.stack` column rule
is for forms, not tables), and a namespace whose episodes are all from today gets today's chart by the
hour instead of a 14-day chart with one spike."""

from __future__ import annotations

import html
import json
import os
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from service.store.db import make_engine, make_sessionmaker, upgrade
from service.store.episodes import upsert_episodes
from tests.factories import completed, make_record
from tests.servers import REPO, server_in_thread

pytestmark = [pytest.mark.model]

ADMIN_KEY = "layout-admin-key-0123"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("layout")
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(tiny_model_dir), admin_key=ADMIN_KEY,
        api_keys="ka:alpha,kb:beta", scheduler=False, embedded_worker=False, default_max_tokens=2,
    )
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as session, session.begin():  # beta also talked three days ago
        upsert_episodes(session=session, records=[
            completed(make_record("beta", created_at=datetime.now(timezone.utc) - timedelta(days=3)))
        ])
    engine.dispose()
    with server_in_thread(create_app(settings)) as base_url:
        for key in ("ka", "ka", "ka", "kb"):
            reply = httpx.post(
                f"{base_url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                json={"model": "reverie", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.status_code == 200
        assert httpx.post(f"{base_url}/sleep", json={"namespace": "alpha"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 202
        yield base_url


def figure_of(page: str, namespace: str) -> tuple[str, list]:
    section = re.search(rf'<section class="card namespace" data-namespace="{namespace}">(.*?)</section>', page, re.S).group(1)
    figures = re.findall(r'<figure class="(by-hour|by-day)">.*?data-points=\'(.*?)\'', section, re.S)
    [(kind, points)] = figures
    return kind, json.loads(html.unescape(points))


def test_a_day_of_episodes_is_drawn_by_the_hour(server):
    with httpx.Client(base_url=server) as browser:
        assert browser.post("/admin/login", data={"key": ADMIN_KEY}).status_code == 303
        page = browser.get("/admin").text
    now = datetime.now(timezone.utc)
    kind, points = figure_of(page, "alpha")
    assert kind == "by-hour"
    assert [label for label, _ in points] == [f"{h:02d}:00" for h in range(now.hour + 1)]
    assert sum(n for _, n in points) == 3
    kind, points = figure_of(page, "beta")  # older episodes too: the days' chart
    assert kind == "by-day" and sum(n for _, n in points) == 2


def test_episodes_per_hour_on_both_stores(database_url):
    from service.store.episodes import episodes_per_hour

    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    at = [midnight + timedelta(hours=h, minutes=m) for h, m in ((0, 5), (0, 50), (7, 1))] + [midnight - timedelta(minutes=1)]
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        upsert_episodes(session=session, records=[completed(make_record("alpha", created_at=t)) for t in at])
    with sessions() as session:
        assert sorted(episodes_per_hour(session=session, since=midnight)) == [("alpha", 0, 2), ("alpha", 7, 1)]
    engine.dispose()


def test_the_stack_column_rule_leaves_tables_alone():
    css = (REPO / "service" / "static" / "dashboard.css").read_text()
    top_level = css.split("@media")[0]
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", top_level):
        if "display: flex" in body and any(s.strip() == ".stack" for s in selectors.split(",")):
            pytest.fail(f"{selectors.strip()} makes table.stack a flex column on every screen")


@pytest.mark.browser
def test_episode_and_run_tables_span_their_card(server):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server).new_page()
        page.goto("/admin/login")
        page.fill("input[name=key]", ADMIN_KEY)
        page.click("button[type=submit]")
        for path, table in (("/admin/episodes", "#episodes"), ("/admin/runs", "#runs")):
            page.goto(path)
            display, width, room = page.eval_on_selector(
                table, "t => [getComputedStyle(t).display, t.getBoundingClientRect().width, t.parentElement.clientWidth]"
            )
            assert display == "table", (path, display)
            assert width >= 0.95 * room - 40, (path, width, room)
        browser.close()
