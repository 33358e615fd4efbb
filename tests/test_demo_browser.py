"""The demo in a real browser: headless Chromium driven by selenium, on every engine.

For each short name of ``DEMO_SESSION_ENGINE`` the demo is started as the
README starts it (``manage.py rundemo``, here on a free port), and a person's
visit is replayed: log in as demo/demo, add data, remove it, log out. The
hybrid engine must move the data to the server and back while the cookie stays
under the browser's limit; the cookie-only engine must explain, not fail.

Screenshots of each step go to ``HYBRID_SESSIONS_TEST_SCREENSHOTS`` (default: the
test's temporary directory). Without Chromium the tests are skipped with one
line saying how to install it; under ``CI=true`` that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings

from tests.conftest import IN_CI

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
COOKIE_LIMIT = 4096

#: The demo keeps its own SQLite file whatever the suite's database: one walk is enough.
pytestmark = pytest.mark.skipif(
    os.environ.get("HYBRID_SESSIONS_TEST_DB", "sqlite") != "sqlite",
    reason="the demo keeps its own SQLite database: walked on the sqlite run only",
)

ENGINES = [
    "hybrid",
    pytest.param("hybrid-redis", marks=pytest.mark.redis),
    "db",
    pytest.param("cache", marks=pytest.mark.redis),
    "signed_cookies",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    if find_spec("selenium") is None or CHROMIUM is None or CHROMEDRIVER is None:
        message = (
            "Chromium, chromedriver or selenium is missing (Debian: apt-get install chromium "
            "chromium-driver; pip install selenium)"
        )
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing browser is a failure)")
        pytest.skip(message + "; skipping the browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screens(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HYBRID_SESSIONS_TEST_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The demo site on the engine named by the test's parameter; yields its URL."""
    env = {
        **os.environ,
        "DEMO_SESSION_ENGINE": request.node.callspec.params["engine"],
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
        "DEMO_REDIS_URL": settings.CACHES["default"]["LOCATION"],
        # This run's prefix: the test run's cleanup removes these keys, and only them.
        "DEMO_REDIS_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "testproject" / "manage.py"), "rundemo", "127.0.0.1:0",
         "--noreload"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        output = []
        for line in server.stdout:
            output.append(line)
            if "Log in as demo / demo" in line:
                break
        match = re.search(r"Demo site: (http://127\.0\.0\.1:\d+/)", "".join(output))
        assert match, "".join(output)
        yield match.group(1)
    finally:
        server.terminate()
        server.wait(timeout=10)


def text(driver: WebDriver) -> str:
    """The page's text; read again if the page was replaced while it was being read."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    for attempt in range(3):
        try:
            return str(driver.find_element(By.TAG_NAME, "body").text)
        except WebDriverException:  # "node does not belong to the document": a navigation
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def click(driver: WebDriver, label: str) -> None:
    """Press a form's button and wait for the page the form leads to."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.XPATH, f"//button[contains(normalize-space(.), '{label}')]").click()
    # While the old document is torn down, chromedriver may answer "Node with given id
    # does not belong to the document" instead of "stale": ask again until it says stale.
    WebDriverWait(driver, 10, ignored_exceptions=[WebDriverException]).until(
        expected_conditions.staleness_of(page)
    )
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def data_in(driver: WebDriver) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, "[data-testid=data-in]").text)


def cookie_size(driver: WebDriver) -> int:
    cookie = driver.get_cookie(settings.SESSION_COOKIE_NAME)
    assert cookie is not None
    return len(cookie["name"]) + 1 + len(cookie["value"])


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_visit_to_the_demo(chromium: WebDriver, demo: str, screens: Path, engine: str) -> None:
    from selenium.webdriver.common.by import By

    driver = chromium
    driver.delete_all_cookies()

    def shot(step: str) -> None:
        driver.save_screenshot(str(screens / f"demo-{engine}-{step}.png"))

    driver.get(demo + "accounts/login/")
    driver.find_element(By.NAME, "username").send_keys("demo")
    driver.find_element(By.NAME, "password").send_keys("demo")
    click(driver, "Log in")
    assert "Log out" in text(driver)
    assert f"Engine\n{engine} " in text(driver)
    shot("1-logged-in")
    server_side = engine != "signed_cookies"
    if server_side:
        assert "Server record" in text(driver)
    if engine.startswith("hybrid"):
        assert data_in(driver) == "the cookie"

    driver.get(demo + "accounts/sessions/")
    shot("1b-sessions-page")
    assert "Your sessions" in text(driver)
    assert "Change password" in text(driver)  # inside the demo's own layout, with its menu
    driver.get(demo)

    click(driver, "Add 5.0")
    shot("2-added")
    if server_side:
        assert "Added blob_1 (5120 bytes)." in text(driver)
        assert "blob_1" in text(driver)
        assert cookie_size(driver) < COOKIE_LIMIT
        if engine.startswith("hybrid"):
            assert data_in(driver).startswith("the server")
    else:
        assert "Not added: this engine keeps the whole session in the cookie" in text(driver)
        assert "blob_1" not in text(driver)
        assert "Server record" not in text(driver)

    click(driver, "Clear the demo data")
    shot("3-cleared")
    assert "blob_1" not in text(driver)
    assert "Log out" in text(driver)  # clearing the data keeps the login
    if engine.startswith("hybrid"):
        assert data_in(driver) == "the cookie"

    click(driver, "Log out")
    shot("4-logged-out")
    assert "Log in" in text(driver)
    assert "Log out" not in text(driver)
