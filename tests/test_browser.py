"""The web page of `qa serve` in a real headless Chromium: ask the seed question, see 2015 highlighted and cited.

Marked `browser` (not in the default run): needs Debian's chromium and chromium-driver and the selenium
package, which `.ci/run` installs (`python -m pytest -m browser` runs it). A screenshot of the answered page
is saved in test-artifacts/ (or $QA_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, SEEDS

pytestmark = pytest.mark.browser

QUESTION = "When was ISIS-K formed?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the server at {url} was not ready within {seconds:.0f} s")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    import uvicorn

    from qa.config import Settings
    from qa.indexing import build_index
    from qa.server import create_app

    index_dir = tmp_path_factory.mktemp("browser") / "index"
    build_index([SEEDS], index_dir)
    app = create_app(index_dir, Settings(index_dir=str(index_dir)), workers=1)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    _wait_ready(url)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def driver():
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1100,900"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(chromedriver), options=opts)
    yield d
    d.quit()


def test_the_page_answers_and_cites_the_seed_question(server_url, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(server_url)
    box = driver.find_element(By.ID, "question")
    assert driver.switch_to.active_element == box  # the question box has the focus
    box.send_keys(QUESTION, Keys.ENTER)
    wait = WebDriverWait(driver, 120)
    mark = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#best blockquote.context mark")))
    assert mark.text == "2015"
    citation = driver.find_element(By.CSS_SELECTOR, "#best .citation")
    assert citation.text.startswith("isis-k-moscow-attack [")
    start, end = (int(x) for x in citation.text.split("[", 1)[1].rstrip("]").split(":"))
    text = (SEEDS / "isis-k-moscow-attack.txt").read_text(encoding="utf-8")
    assert text[start:end] == "2015"  # the citation slices back from the stored text
    artifacts = Path(os.environ.get("QA_TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(artifacts / "browser-answer.png"))
    citation.click()  # the passage in context, highlighted
    passage = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#passage-text mark")))
    assert passage.text == "2015"
    driver.save_screenshot(str(artifacts / "browser-passage.png"))
    driver.set_window_size(390, 844)  # a phone's width: the answer is still there, no sideways scrolling
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    driver.save_screenshot(str(artifacts / "browser-phone.png"))
