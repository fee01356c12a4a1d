"""A real headless browser for the dashboard tests: Debian's chromium, driven by selenium.

scripts/install-deps.sh --test installs chromium and chromium-driver; without
them the browser tests skip, saying so. Screenshots go to MINIK8S_ARTIFACTS
(default .work/artifacts).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
# Headless as root on a container-like machine; and no traffic but to loopback.
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1700", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")


def artifacts() -> Path:
    path = Path(os.environ.get("MINIK8S_ARTIFACTS") or ROOT / ".work" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def browser() -> webdriver.Chrome:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed "
                    "(scripts/install-deps.sh --test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    return webdriver.Chrome(options=options,
                            service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


def text_of(driver: webdriver.Chrome, element_id: str) -> str:
    try:
        return driver.find_element(By.ID, element_id).text
    except StaleElementReferenceException:  # swapped for a new rendering meanwhile
        return ""


def severe_logs(driver: webdriver.Chrome) -> list[dict]:
    """Script errors and requests the page's Content-Security-Policy refused."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
