"""The operator console (/console) in a real browser: Debian's Chromium, headless, through
chromedriver and Selenium, against the real worker on a private redis-server.

Checks that the pages render with their SVG charts, that markup and quotes in a user id and in
metadata stay text (no alert, the literal text shown), that the console answers 401 without its
token, and that a requeue through the form puts the dead letter's job back, where the worker
applies it. With CONSOLE_SCREENSHOTS=<folder> it saves a screenshot of each page there (the README
shows those of docs/console).

Needs TOKENLEDGER_BIN, redis-server, redis-py, selenium, chromium and chromedriver
(deploy/setup.sh installs them). Without them it skips, except under CI=true, where it fails.

    TOKENLEDGER_BIN=.build/debug/tokenledger python3 -m pytest -q deploy/tests/test_console_browser.py
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from processes import Processes, eventually

IN_CI = os.environ.get("CI", "").lower() == "true"
TOKENLEDGER_BIN = os.environ.get("TOKENLEDGER_BIN")
REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
TOKEN = "browser-test-token-" + uuid.uuid4().hex
EVIL_USER = """<script>alert("u")</script>'q"""
EVIL_NOTE = """<script>alert('m')</script>" """
WAIT_SECONDS = 60


def unavailable(why: str):
    """Skips, except under CI, where a missing part is a failure, never a silent skip."""
    if IN_CI:
        pytest.fail(f"the console browser test cannot run under CI: {why}")
    pytest.skip(why)


try:
    import redis
except ImportError:  # pragma: no cover - the setup installs it
    redis = None
try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover
    webdriver = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_of(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code




@pytest.fixture(scope="module")
def console(tmp_path_factory):
    if not TOKENLEDGER_BIN:
        unavailable("TOKENLEDGER_BIN is not set (path to the built tokenledger executable)")
    if not REDIS_SERVER:
        unavailable("redis-server is not on the PATH")
    if redis is None:
        unavailable("redis-py is not installed")
    if webdriver is None:
        unavailable("selenium is not installed (python3 -m pip install selenium)")
    if not CHROMIUM or not CHROMEDRIVER:
        unavailable("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    folder = tmp_path_factory.mktemp("console")
    processes = Processes(folder)
    client = None
    driver = None
    try:
        socket_path = folder / "redis.sock"
        processes.start("redis", [REDIS_SERVER, "--port", "0", "--unixsocket", str(socket_path),
                                  "--unixsocketperm", "700", "--dir", str(folder), "--save", "",
                                  "--appendonly", "no", "--loglevel", "warning"])
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=30)
        eventually("redis-server answers", lambda: client.ping())
        port = free_port()
        prefix = f"con-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, "TOKENLEDGER_REDIS_URL": f"unix://{socket_path}",
               "TOKENLEDGER_DATABASE": str(folder / "ledger.sqlite"), "TOKENLEDGER_PREFIX": prefix,
               "TOKENLEDGER_HTTP": f"127.0.0.1:{port}", "TOKENLEDGER_CONSOLE_TOKEN": TOKEN}
        env.pop("TOKENLEDGER_CONFIG", None)
        processes.start("worker", [TOKENLEDGER_BIN, "worker"], env=env)
        base = f"http://127.0.0.1:{port}"
        eventually("the worker's /healthz answers", lambda: status_of(f"{base}/healthz") == 200)

        def send(job: dict) -> dict:
            reply_to = f"{prefix}:reply:{uuid.uuid4()}"
            client.lpush(f"{prefix}:jobs", json.dumps({**job, "replyTo": reply_to}))
            got = client.brpop([reply_to], timeout=30)
            assert got is not None, f"no reply to {job}"
            return json.loads(got[1])

        assert send({"type": "open", "id": "b-open", "userId": EVIL_USER})["success"]
        assert send({"type": "credit", "id": "b-seed", "userId": EVIL_USER, "operationType": "seed",
                     "amount": 500})["success"]
        for n in range(5):
            assert send({"type": "debit", "id": f"b-debit-{n}", "userId": EVIL_USER, "operationType": "summary",
                         "amount": 7 * (n + 1), "metadata": {"note": EVIL_NOTE}})["success"], n
        assert send({"type": "credit", "id": "b-credit", "userId": EVIL_USER, "operationType": "bonus",
                     "amount": 40})["success"]
        # A dead letter whose job is valid (its cause mended since): the requeue must apply it.
        job = json.dumps({"type": "open", "id": "b-revived", "userId": "revived"})
        client.lpush(f"{prefix}:dead", json.dumps({"job": job, "error": {"code": "storage_error", "message": "disk full"},
                                                   "failedAt": "2026-12-01T00:00:00.000Z"}))

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1400", "--no-first-run", "--disable-extensions"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(folder / "chromedriver.log")), options=options)
        driver.set_page_load_timeout(WAIT_SECONDS)
        yield base, driver, client, prefix, send
    finally:
        if driver is not None:
            driver.quit()
        if client is not None:
            client.close()
        processes.close()


def wait(driver):
    return WebDriverWait(driver, WAIT_SECONDS)


def no_alert(driver):
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    pytest.fail(f"a script ran: alert {text!r}")


def screenshot(driver, name: str):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))


def test_every_console_path_is_401_without_the_token(console):
    base, _, _, _, _ = console
    # With the token: each page, and 404 for a user the ledger does not have.
    for path, status in (("/console", 200), ("/console/dead", 200), ("/console/month", 200), ("/console/users/nobody", 404)):
        assert status_of(base + path) == 401, path
        assert status_of(base + path, {"Authorization": "Bearer wrong-token-0123456789"}) == 401, path
        assert status_of(base + path, {"Cookie": "tokenledger_console=d3JvbmctdG9rZW4tMDEyMzQ1Njc4OQ=="}) == 401, path
        assert status_of(base + path, {"Authorization": f"Bearer {TOKEN}"}) == status, path


def test_pages_render_with_charts_escaped_and_a_requeue_applies(console):
    base, driver, client, prefix, send = console
    # Without the token the browser gets the sign-in form and no data.
    driver.get(f"{base}/console")
    wait(driver).until(ec.presence_of_element_located((By.NAME, "token")))
    assert "Sign in" in driver.title
    assert not driver.find_elements(By.TAG_NAME, "table")
    field = driver.find_element(By.NAME, "token")
    field.send_keys(TOKEN)
    field.submit()
    wait(driver).until(ec.title_contains("Overview"))
    assert driver.find_elements(By.CSS_SELECTOR, "svg"), "the rate chart"
    cells = " ".join(td.text for td in driver.find_elements(By.CSS_SELECTOR, "td"))
    assert "ready" in cells
    screenshot(driver, "overview")

    # A user's story, found through the search form: the hostile id stays text.
    driver.get(f"{base}/console/users")
    box = wait(driver).until(ec.presence_of_element_located((By.NAME, "id")))
    box.send_keys(EVIL_USER)
    box.submit()
    heading = wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "h2.user-id")))
    no_alert(driver)
    assert heading.text == EVIL_USER
    notes = [pre.text for pre in driver.find_elements(By.CSS_SELECTOR, "pre.metadata") if pre.text]
    assert notes and all(EVIL_NOTE.strip() in json.loads(n)["note"] for n in notes), notes
    assert not driver.find_elements(By.CSS_SELECTOR, "main script"), "no element made from a producer's markup"
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline"), "the balance chart"
    rows = driver.find_elements(By.CSS_SELECTOR, "#history tr")
    assert len(rows) >= 1 + 6, "a header and the six entries written"
    screenshot(driver, "user")

    driver.get(f"{base}/console/month")
    wait(driver).until(ec.title_contains("The month"))
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) >= 5, len(charts)
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect"), "bars for this month's entries"
    screenshot(driver, "month")

    # Dead letters: requeue the one there through the form and its confirmation.
    driver.get(f"{base}/console/dead")
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#dead pre.job")))
    assert "b-revived" in driver.find_element(By.CSS_SELECTOR, "#dead pre.job").text
    screenshot(driver, "dead-letters")
    driver.find_element(By.XPATH, "//table[@id='dead']//button[contains(., 'Requeue')]").click()
    confirm = wait(driver).until(ec.element_to_be_clickable((By.ID, "confirm")))
    assert client.llen(f"{prefix}:dead") == 1, "nothing moves before the confirmation"
    confirm.click()
    wait(driver).until(ec.title_contains("Dead letters"))
    assert "Requeued 1 job(s)" in driver.find_element(By.CSS_SELECTOR, "p.requeued").text
    eventually("the dead letter left its list", lambda: client.llen(f"{prefix}:dead") == 0)
    eventually("the requeued job applied",
               lambda: send({"type": "balance", "id": f"b-q-{uuid.uuid4()}", "userId": "revived"})["success"])
