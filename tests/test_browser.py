"""The demo's operator pages in a real headless Chromium at 1280 px, with screenshots.

An operator revokes a session in the admin and the revoked browser's cookie no
longer signs it in; a user ends another device's session on the devices page.
The "other browser" is a real HTTP client with its own cookie jar, logging in
through the demo's login form. Screenshots go to ``HYBRID_SESSIONS_SCREENSHOTS``
(a directory), else to the test run's temporary directory, for a person to look at.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from tests.engines import ENGINES, Engine
from tests.test_demo import PASSWORD, _demo_site

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
BROWSER_ENGINES = [e for e in ENGINES if e.name in ("db", "cache", "hybrid-db")]

pytestmark = pytest.mark.slow


@pytest.fixture(params=BROWSER_ENGINES, ids=[e.name for e in BROWSER_ENGINES])
def engine(request: pytest.FixtureRequest, transactional_db: Any) -> Iterator[Engine]:
    eng: Engine = request.param
    if eng.needs_redis:
        request.node.add_marker(pytest.mark.redis)
        request.getfixturevalue("_redis_guard")
    with _demo_site(eng):
        yield eng


@pytest.fixture
def live_server(engine: Engine) -> Iterator[Any]:
    """A live server started under the demo's settings, so it runs the demo's middleware."""
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("localhost")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chromium() -> Iterator[WebDriver]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        message = "chromium and chromedriver are needed for the browser tests"
        if IN_CI:
            pytest.fail(message + " (CI=true)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--window-size=1280,900",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screens(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("HYBRID_SESSIONS_SCREENSHOTS")
    folder = Path(base) if base else tmp_path_factory.mktemp("screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def demo_user(transactional_db: Any) -> User:
    return User.objects.create_superuser("demo", "demo@example.com", PASSWORD)


class OtherBrowser:
    """Another browser: real HTTP, its own cookie jar and User-Agent."""

    def __init__(self, base: str, agent: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.opener.addheaders = [("User-Agent", agent)]

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return str(response.read().decode())

    def submit(self, path: str, fields: dict[str, str]) -> None:
        """Load the form's page, then post ``fields`` with its CSRF token, as a browser does."""
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.get(path))
        assert token
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token.group(1)}).encode()
        request = urllib.request.Request(
            self.base + path, data=data, headers={"Referer": self.base + "/"}
        )
        with self.opener.open(request, timeout=10):
            pass

    def log_in(self, username: str, password: str) -> None:
        self.submit("/accounts/login/", {"username": username, "password": password})

    def signed_in_as(self) -> str | None:
        nav = re.search(r"<nav>(.*?)</nav>", self.get("/"), re.DOTALL)
        assert nav, "the demo's menu"
        found = re.search(r'<span class="muted">([^<]+)</span>', nav.group(1))
        return found.group(1) if found else None


def follow(driver: WebDriver, element: WebElement) -> None:
    """Click a link or button and wait until the next page has replaced this one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    # While the old document is torn down, chromedriver may answer "Node with given id
    # does not belong to the document" instead of "stale": ask again until it says stale.
    WebDriverWait(driver, 15, ignored_exceptions=[WebDriverException]).until(
        expected_conditions.staleness_of(page)
    )


def shoot(driver: WebDriver, folder: Path, name: str) -> None:
    # The whole page, however long: the window grows to the document's height.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(900, min(int(height) + 120, 4000)))
    driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(1280, 900)


def fits_the_width(driver: WebDriver, scope: str = "body *") -> bool:
    """No horizontal scrolling: neither the page nor any box in ``scope`` (the admin's tables)."""
    return bool(
        driver.execute_script(
            "if (document.documentElement.scrollWidth > window.innerWidth) return false;"
            "for (const el of document.querySelectorAll(arguments[0])) {"
            "  const style = getComputedStyle(el);"
            "  if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth)"
            "    return false;"
            "}"
            "return true;",
            scope,
        )
    )


def admin_log_in(driver: WebDriver, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("demo")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "input[type=submit]"))
    assert "/admin/" in driver.current_url


def test_revoking_in_the_admin_signs_the_other_browser_out(
    engine: Engine, live_server: Any, chromium: WebDriver, screens: Path, demo_user: User
) -> None:
    from selenium.webdriver.common.by import By

    User.objects.create_user("alice", password=PASSWORD)
    phone = OtherBrowser(live_server.url, IPHONE)
    phone.log_in("alice", PASSWORD)
    phone.submit("/", {"action": "set", "key": "api_token", "value": "tok-secret"})
    phone.submit("/", {"action": "blob"})  # 5 KB: the hybrid engine keeps it on the server
    assert phone.signed_in_as() == "alice"

    admin_log_in(chromium, live_server.url)
    chromium.get(live_server.url + "/admin/hybrid_sessions/session/")
    row = chromium.find_element(By.XPATH, "//tr[td[normalize-space()='alice']]")
    assert "Mobile Safari 17.5 on iOS 17.5" in row.text
    shoot(chromium, screens, f"admin-list-{engine.name}")
    assert fits_the_width(chromium)

    follow(chromium, row.find_element(By.CSS_SELECTOR, "th a"))
    body = chromium.find_element(By.TAG_NAME, "body").text
    assert "********************" in body  # _auth_user_hash and api_token, masked
    assert "tok-secret" not in body
    shoot(chromium, screens, f"admin-detail-{engine.name}")
    assert fits_the_width(chromium)

    follow(chromium, chromium.find_element(By.LINK_TEXT, "Revoke this session"))
    shoot(chromium, screens, f"admin-revoke-confirm-{engine.name}")
    follow(chromium, chromium.find_element(By.CSS_SELECTOR, "input[type=submit]"))
    assert "The session was revoked." in chromium.find_element(By.TAG_NAME, "body").text

    assert phone.signed_in_as() is None


def test_ending_another_device_on_the_devices_page(
    engine: Engine, live_server: Any, chromium: WebDriver, screens: Path, demo_user: User
) -> None:
    from selenium.webdriver.common.by import By

    phone = OtherBrowser(live_server.url, IPHONE)
    phone.log_in("demo", PASSWORD)
    assert phone.signed_in_as() == "demo"
    admin_log_in(chromium, live_server.url)

    chromium.get(live_server.url + "/accounts/sessions/")
    rows = chromium.find_elements(By.CSS_SELECTOR, "table.session-list tbody tr")
    assert len(rows) == 2
    assert "This device" in rows[0].text  # the current device first
    assert "Chrome" in rows[0].text
    assert "Mobile Safari 17.5 on iOS 17.5" in rows[1].text
    assert "Mozilla/5.0" not in chromium.find_element(By.TAG_NAME, "body").text
    assert chromium.find_element(By.LINK_TEXT, "Change password")  # the demo's menu
    shoot(chromium, screens, f"devices-{engine.name}")
    assert fits_the_width(chromium)

    follow(chromium, rows[1].find_element(By.TAG_NAME, "button"))
    assert "The session was ended." in chromium.find_element(By.TAG_NAME, "body").text
    shoot(chromium, screens, f"devices-after-ending-{engine.name}")
    assert phone.signed_in_as() is None

    chromium.get(live_server.url + f"/admin/auth/user/{demo_user.pk}/change/")
    assert "Log out everywhere" in chromium.find_element(By.TAG_NAME, "body").text
    section = chromium.find_element(By.CSS_SELECTOR, ".hybrid-sessions-of-user")
    chromium.execute_script("arguments[0].scrollIntoView()", section)
    shoot(chromium, screens, f"admin-user-page-{engine.name}")
    # Django's own permission pickers scroll sideways; the sessions section must not.
    assert fits_the_width(chromium, ".hybrid-sessions-of-user, .hybrid-sessions-of-user *")
