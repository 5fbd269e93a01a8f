"""The admin dashboard in headless Chromium (Debian's `chromium`, driven by Playwright) against a real
server on loopback with Postgres and the tiny model: sign in, the backlog, Sleep now with live progress,
adapters and rollback, finding and deleting episodes, signing out; the Keys page (create, shown once,
revoke). Screenshots of every page, laptop and phone width, land in test-output/dashboard/."""

from __future__ import annotations

from datetime import datetime, timezone

import os
import re
import time

import openai
import pytest
import yaml

from service.app import create_app
from service.config import Settings
from tests.servers import REPO, server_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.db, pytest.mark.model, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
SHOTS = REPO / "test-output" / "dashboard"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ADMIN_KEY = "dashboard-admin-key"
TINY_SLEEP = str(REPO / "tests" / "data" / "tiny-sleep.yaml")
FINAL = ("published", "rejected", "failed", "cancelled")


def chat(base_url: str, key: str, text: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": text}], max_tokens=6, temperature=0)


@pytest.fixture
def server(tmp_path, tiny_model_dir, postgres_url):
    # The tiny recipe with more seeding steps: a night of a few seconds, long enough to watch it move.
    config = yaml.safe_load(open(TINY_SLEEP)) | {"steps": 24}
    (tmp_path / "sleep.yaml").write_text(yaml.safe_dump(config))
    settings = Settings(
        data_dir=tmp_path / "data", database_url=postgres_url, model=str(tiny_model_dir),
        api_keys="ka:alpha,kb:beta", admin_key=ADMIN_KEY, sleep_config=str(tmp_path / "sleep.yaml"), scheduler=False,
        adapter_sync_interval_s=0.5,
    )
    app = create_app(settings)
    with server_in_thread(app) as base_url:
        yield base_url, app


@pytest.fixture
def page(server):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    base_url, _ = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=LAPTOP, base_url=base_url)
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.problems = []  # console errors (CSP violations among them) and requests leaving the server
        expected = "the server responded with a status of 401"  # the refused sign-ins, on purpose
        page.on("console", lambda m: m.type == "error" and expected not in m.text and page.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
        page.on("request", lambda r: r.url.startswith((base_url, "data:")) or page.problems.append(f"request: {r.url}"))
        try:
            yield page
        finally:
            context.close()
            browser.close()


def shoot(page, name: str) -> None:
    """A full-page screenshot at laptop and at phone width."""
    page.screenshot(path=str(SHOTS / f"{name}-laptop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(150)
    page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(LAPTOP)


def card(page, namespace: str):
    return page.locator(f'section.namespace[data-namespace="{namespace}"]')


def sleep_now_and_watch(page, namespace: str, timeout_s: float = 300, shot: str | None = None) -> list[tuple[str, str, str]]:
    """Click "Sleep now" on the overview; follow the run page until the run ends. Returns what it showed
    (and takes the screenshot `shot` once it is seen training)."""
    page.goto("/admin")
    card(page, namespace).locator("button.sleep-now").click()
    page.wait_for_url(re.compile(r"/admin/runs/[0-9a-f-]{36}$"))
    seen: list[tuple[str, str, str]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            shown = (page.inner_text("#run-state", timeout=2000), page.inner_text("#run-phase", timeout=2000),
                     page.inner_text("#run-step", timeout=2000))
        except Exception:  # the page reloads itself once the run has ended
            continue
        if not seen or seen[-1] != shown:
            seen.append(shown)
        if shot and shown[1] == "seed":  # mid-training
            page.screenshot(path=str(SHOTS / f"{shot}-laptop.png"))
            shot = None
        if shown[0] in FINAL and page.locator("#run").get_attribute("data-live") == "false":
            return seen
        time.sleep(0.05)
    raise TimeoutError(f"the run page never showed an end: {seen[-3:]}")


def wait_served(app, namespace: str, name: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while app.state.engine.active_adapter(namespace) != name and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.engine.active_adapter(namespace) == name


def test_dashboard_end_to_end(server, page):
    base_url, app = server

    # --- locked until signed in; a wrong key and a user key are refused -----------------------------
    page.goto("/admin/runs")
    assert page.url.startswith(f"{base_url}/admin/login?next=")
    shoot(page, "login")
    for key in ("not-the-key", "ka"):
        page.fill("#key", key)
        page.click("button[type=submit]")
        assert page.inner_text("#login-error") == "Wrong admin key."
        assert "/admin/login" in page.url
    shoot(page, "login-refused")
    page.fill("#key", ADMIN_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/admin/runs")  # back where it was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "reverie_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # --- chats raise the backlog shown ------------------------------------------------------------
    page.goto("/admin")
    for text in ("My cousin Varo Tesk keeps 3 goats in Ulm.", "Varo Tesk also keeps 4 geese.",
                 "The lighthouse keeper is called Orla Venn."):
        chat(base_url, "ka", text)
    chat(base_url, "kb", "Hello there.")
    page.reload()
    assert card(page, "alpha").locator(".backlog-episodes").inner_text() == "3"
    assert card(page, "beta").locator(".backlog-episodes").inner_text() == "1"
    assert card(page, "alpha").locator(".active-adapter").inner_text().strip() == "base model"
    # every episode is from today: the activity chart is drawn by the hour so far (not 13 empty days and a spike)
    assert "Episodes per hour today" in card(page, "alpha").inner_text()
    hours = datetime.now(timezone.utc).hour + 1
    assert card(page, "alpha").locator("svg.chart rect.bar").count() in (hours, hours + 1)  # an hour may turn
    assert card(page, "alpha").locator("svg.chart polyline.line").count() == 1  # backlog over time
    shoot(page, "overview-backlog")

    # --- Sleep now: progress advances on the page without a reload, then the run is published -------
    seen = sleep_now_and_watch(page, "alpha", shot="run-live")
    assert seen[-1][0] == "published", seen
    progressed = [s for s in seen if s[0] in ("running", "evaluating") and s[1] != "—"]
    assert len({(phase, step) for _, phase, step in progressed}) >= 2, seen  # it moved while we watched
    tiles = page.inner_text("#run-metrics")
    assert "Recall of new facts" in tiles and "General score" in tiles and "Episodes" in tiles
    assert page.locator("svg.chart polyline.line").count() >= 1  # the training loss
    shoot(page, "run-published")
    wait_served(app, "alpha", "mem-alpha-v1")

    page.goto("/admin")
    assert card(page, "alpha").locator(".backlog-episodes").inner_text() == "0"
    assert card(page, "alpha").locator(".active-adapter").inner_text().startswith("v1, made")
    assert card(page, "alpha").locator("svg.chart circle.dot").last.locator("title").text_content().endswith(": 3")  # the peak
    shoot(page, "overview-after-sleep")

    # --- a second night makes v2; rollback to v1 after a confirmation ------------------------------
    chat(base_url, "ka", "Varo Tesk moved the goats to Lindau.")
    assert sleep_now_and_watch(page, "alpha")[-1][0] == "published"
    wait_served(app, "alpha", "mem-alpha-v2")
    page.goto("/admin/runs")
    assert page.locator("#runs tbody tr").count() == 2
    assert page.locator("#runs tbody .badge").all_inner_texts() == ["published", "published"]
    shoot(page, "runs")

    page.goto("/admin/adapters?namespace=alpha")
    rows = page.locator("#adapters tbody tr")
    assert [r.get_attribute("data-version") for r in rows.all()] == ["2", "1"]
    assert rows.nth(0).locator(".badge").inner_text() == "active"
    assert rows.nth(1).locator(".badge").inner_text() == "candidate"
    shoot(page, "adapters")
    activate = page.locator('button.activate[data-version="1"]')
    page.once("dialog", lambda dialog: dialog.dismiss())  # changed our mind: nothing happens
    activate.click()
    page.wait_for_timeout(300)
    assert app.state.engine.active_adapter("alpha") == "mem-alpha-v2"
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        activate.click()
    assert page.locator('#adapters tr[data-version="1"] .badge').inner_text() == "active"
    assert page.locator('#adapters tr[data-version="2"] .badge').inner_text() == "candidate"
    assert app.state.engine.active_adapter("alpha") == "mem-alpha-v1"  # swapped before the reply
    shoot(page, "adapters-rolled-back")

    # --- an episode is found by text, opened and deleted; it leaves the backlog ---------------------
    chat(base_url, "ka", "The ferry to Ilse Maren leaves at seven.")
    page.goto("/admin/episodes")
    page.fill("#q", "ilse maren")
    page.click("#episode-search button[type=submit]")
    found = page.locator("#episodes tbody tr")
    assert found.count() == 1
    shoot(page, "episodes-search")
    found.locator("td.text a").click()
    page.wait_for_url(re.compile(r"/admin/episodes/[0-9a-f-]{36}$"))
    assert "The ferry to Ilse Maren leaves at seven." in page.inner_text("main")
    shoot(page, "episode")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button.delete-episode")
    page.wait_for_url(re.compile(r"/admin/episodes\?namespace=alpha$"))
    page.fill("#q", "ilse maren")
    page.click("#episode-search button[type=submit]")
    assert page.locator("#no-episodes").is_visible()
    page.goto("/admin")
    # what is left in the backlog: the goats' move, which only v2 learned and the rollback gave back
    assert card(page, "alpha").locator(".backlog-episodes").inner_text() == "1"

    # --- forget a whole namespace, confirmed by typing its name -------------------------------------
    page.goto("/admin/episodes?namespace=beta")
    assert page.locator("#episodes tbody tr").count() == 1
    shoot(page, "episodes-namespace")
    page.once("dialog", lambda dialog: dialog.accept("beta"))
    page.click("button.delete-namespace")
    page.wait_for_url(re.compile(r"/admin/episodes\?namespace=beta$"))
    page.wait_for_selector("#no-episodes")
    page.goto("/admin")
    # forgotten outright: with no episode, run or adapter left, the namespace leaves the overview
    assert page.locator('section.namespace[data-namespace="beta"]').count() == 0
    assert card(page, "alpha").is_visible()

    # --- signing out locks the pages and the API again ---------------------------------------------
    page.click(".signout button")
    page.wait_for_url(f"{base_url}/admin/login")
    for path in ("/admin", "/admin/runs", "/admin/adapters", "/admin/episodes"):
        page.goto(path)
        assert page.url.startswith(f"{base_url}/admin/login"), path
    assert page.request.get("/admin/api/stats").status == 401
    assert page.request.post("/sleep", data={"namespace": "alpha"}).status == 401

    assert page.problems == []  # no console errors, no CSP violations, nothing fetched from elsewhere


def test_dashboard_assets_are_served_by_reverie(server):
    """CSS and JS come from Reverie itself (no CDN, works offline); pages forbid foreign scripts."""
    import httpx

    base_url, _ = server
    for asset, kind in (("dashboard.css", "text/css"), ("dashboard.js", "javascript")):
        response = httpx.get(f"{base_url}/admin/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        text = response.text.replace('"http://www.w3.org/2000/svg"', "")  # the SVG namespace is a name, not a fetch
        assert "http://" not in text and "https://" not in text
    login = httpx.get(f"{base_url}/admin/login")
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", login.text)



def test_keys_page_creates_shows_once_and_revokes(server, page):
    """The Keys page in the browser: a key made with its form is shown once, works on the same server's
    API, is listed only by its prefix, and its Revoke button makes the API refuse it."""
    import httpx

    base_url, _ = server

    def models(key: str) -> int:
        return httpx.get(f"{base_url}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code

    page.goto("/admin/keys")
    assert page.url.startswith(f"{base_url}/admin/login?next=")
    page.fill("#key", ADMIN_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/admin/keys")
    assert page.locator("#keys").count() == 0  # none in the store yet (ka and kb live in the environment)
    assert page.is_visible("#no-keys")
    assert "REVERIE_API_KEYS holds 2 more keys" in page.inner_text("main")

    # --- create: the key is shown once, in the page, and works at once ------------------------------
    label = "ci runner <nightly>"
    page.fill("#key-namespace", "gamma")
    page.fill("#key-label", label)
    page.click("#create-key button[type=submit]")
    page.wait_for_selector("#new-key:not([hidden])")
    assert page.inner_text("#new-key-namespace") == "gamma"
    key = page.inner_text("#new-key-value").strip()
    assert re.fullmatch(r"rk_[A-Za-z0-9_-]{43}", key), key
    assert page.input_value("#key-label") == ""  # the form is ready for the next one
    assert page.locator("#create-key button[type=submit]").is_enabled()
    assert not page.is_visible("#no-keys")  # the empty-store notice no longer contradicts the new key
    shoot(page, "keys-created")
    assert models(key) == 200
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    assert client.models.list().data

    # --- listed by its prefix only, never the key ---------------------------------------------------
    page.click("#new-key a")  # Done
    page.wait_for_selector("#keys")
    assert page.locator("#new-key").is_hidden()
    rows = page.locator("#keys tbody tr")
    assert rows.count() == 1
    row = rows.first
    assert row.locator("code").inner_text() == key[:11] + "…"
    assert row.locator('td[data-label="Namespace"]').inner_text() == "gamma"
    assert row.locator('td[data-label="Label"]').inner_text() == label  # shown as text, not markup
    assert row.locator(".badge").inner_text() == "active"
    assert key not in page.content()
    shoot(page, "keys")

    # --- revoke through the button, after a confirmation; the API refuses the key -------------------
    revoke = row.locator("button.revoke-key")
    page.once("dialog", lambda dialog: dialog.dismiss())  # changed our mind: nothing happens
    revoke.click()
    page.wait_for_timeout(300)
    assert models(key) == 200
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        revoke.click()
    assert asked and key[:11] in asked[0] and key not in asked[0]
    row = page.locator("#keys tbody tr").first
    assert row.locator(".badge").inner_text().startswith("revoked")
    assert row.locator("button.revoke-key").count() == 0
    shoot(page, "keys-revoked")
    assert models(key) == 401
    assert models("ka") == 200  # the environment's keys are untouched

    assert page.problems == []
