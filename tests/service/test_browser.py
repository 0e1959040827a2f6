"""The page and the widget in real headless Chromium (Debian's), driven by Playwright.

Audio comes from the edge stand-in, played by the browser for real: the tests watch
``audio.currentTime`` advance and the highlighted sentence follow it. Each test keeps a screenshot
in tests/service/screenshots/.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pages import seed_page
from tests.service.conftest import ARTICLE, SCREENSHOTS, LiveServer
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = "Debian's chromium is missing (python3 tasks.py test installs it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run the browser tests, never skip them silently
        pytest.skip(message)
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def shot(tab: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def wait_until(tab: Any, expression: str, timeout: float = 15.0) -> Any:
    """Poll a JavaScript expression until it is truthy; returns its value.

    (Playwright's ``wait_for_function`` evaluates strings with ``eval``, which the page's CSP
    rightly forbids; ``evaluate`` goes through the debugger protocol and is not subject to it.)
    """
    deadline = time.monotonic() + timeout
    while True:
        value = tab.evaluate(expression)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def current(tab: Any) -> int:
    index: int = tab.evaluate(
        "(() => { const s = document.querySelector('.s.current');"
        " return s ? parseInt(s.dataset.index, 10) : -1; })()"
    )
    return index


def finished_reading(server: LiveServer, text: str = ARTICLE) -> dict[str, Any]:
    """POST ``text`` and wait until it is done (sync: Playwright's loop owns this thread)."""
    with httpx.Client(base_url=server.base) as client:
        response = client.post("/api/readings", json={"text": text})
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 20
        while True:
            reading: dict[str, Any] = client.get(response.json()["links"]["self"]).json()
            if reading["status"] in ("done", "failed"):
                assert reading["status"] == "done", reading["error"]
                return reading
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_submit_text_plays_while_synthesizing_and_highlight_follows(
    serve: Any, edge_standin: EdgeStandin, page: Any
) -> None:
    # Paced like a real voice service, so the article is still being made when playback starts.
    edge_standin.configure(first_audio_latency=0.2, realtime_multiple=2.0)
    server = serve()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.base + "/")
    assert page.title() == "智能朗读"
    page.get_by_label("文章链接或正文").fill(ARTICLE)
    page.evaluate(
        "document.getElementById('audio').addEventListener('playing',"
        " () => { window.playingAt = performance.now(); }, { once: true })"
    )
    clicked = page.evaluate("performance.now()")
    page.get_by_role("button", name="开始朗读").click()
    page.wait_for_url("**/readings/*")

    # Audio starts from the live stream before the reading is finished.
    wait_until(page, "document.getElementById('audio').currentTime > 0.3")
    reading_id = page.url.rsplit("/", 1)[1]
    status = httpx.get(f"{server.base}/api/readings/{reading_id}").json()["status"]
    assert status == "running"
    assert any(url.endswith(f"/api/readings/{reading_id}/stream.mp3") for url in requested)
    # From the click to sound: the first segment (the title, 1.85 s of speech delivered at twice
    # real time after 0.2 s) is the floor; the page adds little to it.
    started = (page.evaluate("window.playingAt") - clicked) / 1000
    print(f"click → playing: {started:.2f} s")
    assert started < 0.2 + 1.85 / 2 + 1.0

    # The title is highlighted first, then the highlight moves on with the audio.
    title = page.locator("#article-title .s")
    assert title.first.text_content() == "城市书房今天开放"
    wait_until(page, "document.querySelector('.s.current') !== null")
    assert current(page) == 0
    assert page.locator(".s.current").get_attribute("aria-current") == "true"
    page.select_option("#speed", "2")  # twice as fast: the next sentence comes sooner
    assert page.evaluate("document.getElementById('audio').playbackRate") == 2
    wait_until(page, "parseInt(document.querySelector('.s.current').dataset.index, 10) >= 2")
    highlighted = page.locator(".s.current")
    assert highlighted.text_content() == "市民可以免费借阅图书，还能参加读书会！"
    # kept in view
    box = highlighted.bounding_box()
    assert box is not None and 0 <= box["y"] <= 900
    shot(page, "page-playing")

    # The paragraphs are shown as text, each sentence in order.
    paragraphs = page.locator("#article-body p")
    assert paragraphs.count() == 3
    assert paragraphs.nth(1).text_content() == (
        "书房位于市中心广场东侧，面积约三百平方米。馆内藏书一万余册，设有阅读区和儿童区。"
    )


def test_keyboard_alone_controls_the_player(
    serve: Any, edge_standin: EdgeStandin, page: Any
) -> None:
    server = serve()
    reading = finished_reading(server)
    starts = [s["start"] for s in reading["sentences"]]
    page.goto(server.base + reading["links"]["page"])
    wait_until(page, "document.querySelectorAll('.s').length === 7")
    audio = "document.getElementById('audio')"

    # Tab reaches the play button and its focus ring shows; Enter starts playback.
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "play":
            break
    assert page.evaluate("document.activeElement.id") == "play"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    wait_until(page, f"!{audio}.paused && {audio}.currentTime > 0.1")
    page.get_by_role("button", name="暂停", exact=True).wait_for(timeout=2000)

    # → twice: two sentences on; ← once: one back (the finished file can seek anywhere).
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert current(page) == 2
    assert page.evaluate(f"{audio}.currentTime") == pytest.approx(starts[2], abs=0.3)
    page.keyboard.press("j")
    assert current(page) == 1
    assert page.evaluate(f"{audio}.currentTime") == pytest.approx(starts[1], abs=0.3)

    # + and - change the speed, k pauses.
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert page.evaluate(f"{audio}.playbackRate") == 1.5
    page.keyboard.press("-")
    assert page.evaluate(f"{audio}.playbackRate") == 1.25
    page.keyboard.press("k")
    wait_until(page, f"{audio}.paused")
    page.get_by_role("button", name="播放", exact=True).wait_for(timeout=2000)

    # ↓ moves focus through the sentences; Enter plays from the focused one.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    focused = page.evaluate("parseInt(document.activeElement.dataset.index, 10)")
    assert focused == 4
    page.keyboard.press("Enter")
    wait_until(page, f"!{audio}.paused")
    assert current(page) == 4
    assert page.evaluate(f"{audio}.currentTime") >= starts[4] - 0.05
    shot(page, "page-keyboard")

    # The position is remembered: a reload offers to resume there.
    page.keyboard.press("k")
    wait_until(page, f"{audio}.paused")
    position = page.evaluate(f"{audio}.currentTime")
    page.reload()
    wait_until(page, "document.querySelectorAll('.s').length === 7")
    assert "上次的位置" in page.locator("#status").text_content()
    wait_until(page, f"{audio}.currentTime > 0")
    assert page.evaluate(f"{audio}.currentTime") == pytest.approx(position, abs=0.3)
    assert current(page) == 4


def test_widget_inserts_the_button_and_plays_the_article(
    serve: Any, edge_standin: EdgeStandin, web: LocalWeb, page: Any, seed_text: str
) -> None:
    # The service cannot reach the publisher's page (loopback is not allowed), so the widget
    # sends the page's HTML instead; its origin is allowed to use the API.
    server = serve(allow_origins=(web.base,))
    article = seed_page(seed_text).replace(
        "</body>", f'<script src="{html.escape(server.base)}/widget.js" defer></script></body>'
    )
    url = web.page("/2024/0702/seed.html", article)
    page.goto(url)

    button = page.get_by_role("button", name="智能朗读")
    button.wait_for()
    # The button sits right after the headline.
    after_headline = page.evaluate("document.querySelector('h1').nextElementSibling.className")
    assert after_headline == "newsreader-widget"
    assert button.get_attribute("aria-expanded") == "false"
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    panel = page.get_by_role("region", name="智能朗读播放器")
    assert panel.is_visible()

    audio = "document.querySelector('.newsreader-widget').shadowRoot.querySelector('audio')"
    wait_until(page, f"{audio}.currentTime > 0.3")
    spans = page.locator(".newsreader-widget .s")
    wait_until(page, f"{audio}.getRootNode().querySelectorAll('.s').length > 10")
    assert spans.first.text_content() == "市科技局落实院地合作联席会议制度 构建产学研合作新模式"
    wait_until(
        page,
        "document.querySelector('.newsreader-widget').shadowRoot.querySelector('.s.current')",
    )
    # Next sentence from the keyboard inside the panel.
    shadow = "document.querySelector('.newsreader-widget').shadowRoot"
    index = f"[...{shadow}.querySelectorAll('.s')].indexOf({shadow}.querySelector('.s.current'))"
    before = page.evaluate(index)
    # (the next sentence must have been synthesized to be reachable)
    wait_until(
        page, f"!{shadow}.querySelectorAll('.s')[{before + 1}].classList.contains('pending')"
    )
    page.get_by_role("button", name="下一句").focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate(index) == before + 1
    shot(page, "widget-playing")

    # Only the page URL was fetched by the browser; the service never fetched it (refused), and
    # the reading it made names the page as its source.
    assert web.requests.count("/2024/0702/seed.html") == 1
    store = server.app.state.service.store
    deadline = time.monotonic() + 20
    while not store.finished() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [row.source for row in store.finished()] == [url]
    # posted HTML is never listed: the feed holds only pages the service read itself
    assert "<item>" not in httpx.get(server.base + "/feed.xml").text

    # Escape closes the panel and gives focus back to the button.
    page.get_by_role("button", name="上一句").focus()
    page.keyboard.press("Escape")
    assert not panel.is_visible()
    assert page.evaluate(f"{audio}.paused")


def test_the_widget_on_a_site_that_is_not_allowed_gets_no_service(
    serve: Any, edge_standin: EdgeStandin, web: LocalWeb, page: Any, seed_text: str
) -> None:
    server = serve()  # no --allow-origin
    article = seed_page(seed_text).replace(
        "</body>", f'<script src="{html.escape(server.base)}/widget.js" defer></script></body>'
    )
    page.goto(web.page("/2024/0702/seed.html", article))
    page.keyboard.press("Tab")  # the button is reachable from the keyboard
    for _ in range(30):
        if page.evaluate("document.activeElement.className") == "newsreader-widget":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    status = page.locator(".newsreader-widget .status")
    status.filter(has_text="无法连接朗读服务").wait_for(timeout=5000)
    shot(page, "widget-refused")
    health = httpx.get(server.base + "/healthz").json()
    assert health["queued"] == health["running"] == 0
    assert httpx.get(server.base + "/feed.xml").text.count("<item>") == 0
