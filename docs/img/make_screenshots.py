"""Capture the README's web UI screenshots: ``webui-tab.png`` and ``webui-report.png``.

    .venv/bin/python docs/img/make_screenshots.py

Starts the embedded demo endpoint and ``loadbench ui`` against it (a throw-away reports dir),
then drives headless Chromium with Selenium (Debian's ``chromium`` and ``chromium-driver``):
start a test, open the loadbench tab, stop, open the report.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def first_url(process: subprocess.Popen[str], pattern: str) -> str:
    """Read the child's output until a line matches ``pattern``; return the URL in it."""
    stream = process.stdout
    assert stream is not None
    for line in stream:
        match = re.search(pattern, line)
        if match:
            return match.group(1).rstrip("/")
    raise SystemExit(f"{process.args} ended without printing its URL")


def find(driver: Any, xpath: str) -> Any:
    return WebDriverWait(driver, 60, 0.2).until(lambda d: next(iter(d.find_elements(By.XPATH, xpath)), None))


def main() -> int:
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        demo = subprocess.Popen(
            [python, "-m", "loadbench", "demo", "--port", "0", "--latency-ms", "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        target = first_url(demo, r"(http://\S+)")
        ui = subprocess.Popen(
            [
                python,
                "-m",
                "loadbench",
                "ui",
                "--target",
                target,
                "--web-port",
                "0",
                "--users",
                "16",
                "--reports-dir",
                f"{tmp}/reports",
                "--warmup",
                "1s",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        process_out = ui.stderr
        assert process_out is not None
        url = ""
        for line in process_out:
            match = re.search(r"web UI at (http://\S+)", line)
            if match:
                url = match.group(1).rstrip("/")
                break
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,1050",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService("/usr/bin/chromedriver"))
        try:
            driver.get(f"{url}/")
            find(driver, "//button[@type='submit']").click()
            find(
                driver, "//*[@role='tab' and contains(translate(., 'LOADBENCH', 'loadbench'), 'loadbench')]"
            ).click()
            time.sleep(8)  # a few seconds of load: percentiles and resources settle
            driver.save_screenshot(str(HERE / "webui-tab.png"))
            find(driver, "//button[contains(translate(., 'STOP', 'stop'), 'stop')]").click()
            report = find(driver, "//a[@id='loadbench-report-link']").get_attribute("href")
            driver.set_window_size(1400, 1100)
            driver.get(report)
            time.sleep(1)
            driver.execute_script("document.querySelector('img').scrollIntoView()")  # the first plot
            driver.save_screenshot(str(HERE / "webui-report.png"))
        finally:
            driver.quit()
            for process in (ui, demo):
                process.terminate()
                process.wait(timeout=60)
    print(f"wrote {HERE / 'webui-tab.png'} and {HERE / 'webui-report.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
