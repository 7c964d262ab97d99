"""Headless Chromium driven by Selenium, for tests/support/browser.rs.

Starts Debian's chromium through Debian's chromedriver (both found on PATH; nothing is
downloaded), then answers one JSON request per line on stdin with one JSON line on stdout:

  {"cmd": "open", "url": URL}                       -> {"ok": true}
  {"cmd": "wait_css", "css": SELECTOR, "timeout": S} -> {"ok": true}
  {"cmd": "wait_text", "text": TEXT, "timeout": S}   -> {"ok": true}   (in the body's text)
  {"cmd": "click", "css": SELECTOR}                  -> {"ok": true}
  {"cmd": "text"}                                    -> {"ok": true, "value": BODY_TEXT}
  {"cmd": "dom"}                                     -> {"ok": true, "value": PAGE_SOURCE}
  {"cmd": "screenshot", "path": PATH}                -> {"ok": true}   (PNG of the viewport)
  {"cmd": "type", "css": SELECTOR, "text": TEXT}     -> {"ok": true}   (replaces the field's text, as keystrokes)
  {"cmd": "quit"}                                    -> {"ok": true}, then exits

A failure is {"ok": false, "error": TEXT}; the first line is {"ok": true, "ready": VERSION} once
the browser runs, or a failure saying what is missing. Chromium is started with its background
networking off and a dead proxy for anything not on loopback, so it reaches only the pages a
test opens on loopback.

Usage: python3 browser.py PROFILE_DIR
"""

import json
import shutil
import sys

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as err:
    print(json.dumps({"ok": False, "error": f"cannot import selenium ({err}): apt-get install "
                      "python3-selenium (.ci/test does)"}), flush=True)
    sys.exit(0)

# The flags tests/report.rs gives its headless Chromium: no sandbox (root in CI), no GPU, and
# none of the background connections (updates, sync, safe browsing) a closed network refuses.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--window-size=1280,800",
    # Belt and braces: any request that is not to loopback (which Chromium never proxies) goes to
    # a closed loopback port and fails, instead of leaving the machine.
    "--proxy-server=http://127.0.0.1:9",
]

PAGE_LOAD_TIMEOUT = 60
VIEWPORT = (1280, 800)


def reply(**fields):
    print(json.dumps(fields), flush=True)


def start(profile):
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None:
        raise RuntimeError("`chromium` is not on PATH: apt-get install chromium (.ci/test does)")
    if driver_path is None:
        raise RuntimeError(
            "`chromedriver` is not on PATH: apt-get install chromium-driver (.ci/test does)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # An explicit driver path: Selenium never looks for (or downloads) a driver of its own.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    # The window's size includes what a headless window still reserves for its frame: fix the
    # viewport itself, so screenshots are 1280x800 whatever the Chromium version.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
    return driver


def handle(driver, request):
    cmd = request.get("cmd")
    if cmd == "open":
        driver.get(request["url"])
        return {}
    if cmd == "wait_css":
        WebDriverWait(driver, request["timeout"]).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, request["css"])),
            f"no element matches `{request['css']}`")
        return {}
    if cmd == "wait_text":
        WebDriverWait(driver, request["timeout"]).until(
            expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"),
                                                              request["text"]),
            f"the page never showed `{request['text']}`")
        return {}
    if cmd == "click":
        driver.find_element(By.CSS_SELECTOR, request["css"]).click()
        return {}
    if cmd == "text":
        return {"value": driver.find_element(By.TAG_NAME, "body").text}
    if cmd == "dom":
        return {"value": driver.page_source}
    if cmd == "screenshot":
        if not driver.save_screenshot(request["path"]):
            raise RuntimeError(f"could not write a screenshot to {request['path']}")
        return {}
    if cmd == "type":
        field = driver.find_element(By.CSS_SELECTOR, request["css"])
        field.clear()
        field.send_keys(request["text"])
        return {}
    raise RuntimeError(f"unknown command `{cmd}`")


def main():
    profile = sys.argv[1]
    try:
        driver = start(profile)
    except (RuntimeError, WebDriverException) as err:
        reply(ok=False, error=f"cannot start headless chromium: {err}")
        return
    try:
        reply(ok=True, ready=driver.capabilities.get("browserVersion", "unknown"))
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("cmd") == "quit":
                break
            try:
                reply(ok=True, **handle(driver, request))
            except (RuntimeError, WebDriverException, KeyError) as err:
                reply(ok=False, error=f"{type(err).__name__}: {err}".strip())
    finally:
        driver.quit()
    reply(ok=True)


if __name__ == "__main__":
    main()
