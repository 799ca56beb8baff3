"""Browser test of the operator dashboard at /ui, in headless Chromium.

Started by tests/ui/run.sh against a running `conveyor all` (CONVEYOR_URL) and its
sandbox. Seeds data through the JSON API, then uses the page as an operator would:
finds a dead job, retries it (first without the admin token when the server asks for
one, then with it), and waits for the page to show it succeeded; reads the throughput
history and the failure rates, finds a job by its id's beginning, aborts a running job.
Checks what keyboard and
phone users meet too: focus kept across polls, job rows opened from the keyboard,
nothing scrolled under the top bar, times that keep ticking, and no action before a
token is entered. Saves a desktop and a phone screenshot (and a dark one). Every wait is bounded. Prints one closing line:
`ui: N passed, M failed`.
"""

import base64
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

BASE = os.environ["CONVEYOR_URL"].rstrip("/")
TOKEN = os.environ.get("ADMIN_TOKEN", "")
READ_TOKEN = os.environ.get("READ_TOKEN", "")
SHOT_DESKTOP = os.environ.get("SCREENSHOT", "target/ui-dashboard.png")
SHOT_PHONE = os.environ.get("SCREENSHOT_PHONE", "target/ui-dashboard-phone.png")
SHOT_DARK = os.environ.get("SCREENSHOT_DARK", "target/ui-dashboard-dark.png")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

ui_wait = 20.0  # seconds any one thing may take to show on the page
poll_wait = 2.5  # a little more than the page's 2 s between polls


# ---------------------------------------------------------------- JSON API


def api(method, path, body=None, token=False):
    """(status, parsed JSON body or text) of one request to the server."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    if body is not None:
        request.add_header("content-type", "application/json")
    if token and TOKEN:
        request.add_header("authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def until(what, probe, timeout):
    """Polls `probe` until it returns something truthy; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (StaleElementReferenceException, urllib.error.URLError) as err:
            last = err
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s (last seen: {last!r})")


def enqueue_noop(args):
    status, body = api("POST", "/jobs/noop", args, token=True)
    assert status == 202, f"POST /jobs/noop answered {status} {body}"
    return body["job_id"]


def history_totals(minutes=60):
    """(succeeded, failed) of every queue over the last `minutes`, as the server has them."""
    status, body = api("GET", f"/queues/history?minutes={minutes}", token=True)
    assert status == 200, f"GET /queues/history answered {status} {body}"
    rows = [m for q in body["queues"] for m in q["minutes"]]
    return sum(m["succeeded"] for m in rows), sum(m["failed"] for m in rows)


def job_status(job_id):
    status, body = api("GET", f"/jobs/{job_id}", token=True)
    assert status == 200, f"GET /jobs/{job_id} answered {status} {body}"
    return body["status"]


# ---------------------------------------------------------------- browser


def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,900", "--force-color-profile=srgb",
                "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    return driver


def find(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def click(driver, css, what):
    """Clicks the first element matching `css` once it exists (the page re-renders
    every 2 s, so a stale element is found again)."""
    def attempt():
        element = find(driver, css)
        if element is None or not element.is_enabled() or not element.is_displayed():
            return None
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        return True
    until(f"{what} ({css}) to be clickable", attempt, ui_wait)


def shown_changes(driver):
    """The buttons that change something (by id or action) that the page shows."""
    return driver.execute_script(
        "return [...document.querySelectorAll('button[data-action], #bulk-action, #bulk-discard')]"
        ".filter((b) => b.getClientRects().length > 0)"
        ".map((b) => b.id || b.dataset.action)")


def press(driver, key):
    """Presses `key` where the keyboard focus is, as a person would."""
    ActionChains(driver).send_keys(key).perform()


def has_focus(driver, element):
    """Whether `element` holds the keyboard focus (not when it left the page)."""
    try:
        return driver.execute_script("return document.activeElement === arguments[0]", element)
    except StaleElementReferenceException:
        return False


def focused_job_row(driver):
    """The id of the job row holding the keyboard focus, if one does."""
    return driver.execute_script(
        "const row = document.activeElement.closest('#jobs-body tr[data-job-id]');"
        " return row && row.dataset.jobId;")


def created_in_panel(driver):
    """The job panel's "Created" field, e.g. `10:02:03 (4 s ago)`."""
    found = driver.find_elements(
        By.XPATH, "//aside[@id='job-detail']//dt[.='Created']/following-sibling::dd[1]")
    return found[0].text if found else None


def full_page_screenshot(driver, path, width):
    height = driver.execute_script(
        "return Math.ceil(document.documentElement.scrollHeight)")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png",
        "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    })
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as out:
        out.write(base64.b64decode(shot["data"]))


# ---------------------------------------------------------------- the test


class Run:
    """The checks in order; a check that fails fails the ones that need it too."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.broken = None
        self.driver = None
        self.dead_id = None
        self.token_enforced = False
        self.sleeper_id = None  # a job running for two minutes from the page's opening

    def check(self, name, fn, needs_page=True):
        if self.broken and needs_page:
            print(f"FAIL {name}: not run, {self.broken} failed", flush=True)
            self.failed += 1
            return
        started = time.monotonic()
        try:
            note = fn()
        except Exception as err:  # noqa: BLE001 - every failure is reported, none escapes
            self.failed += 1
            self.broken = self.broken or name
            print(f"FAIL {name}: {err}", flush=True)
            if not isinstance(err, AssertionError):
                traceback.print_exc()
            return
        self.passed += 1
        extra = f" ({note})" if note else ""
        print(f"ok   {name} [{time.monotonic() - started:.1f} s]{extra}", flush=True)

    # ---- seeding through the JSON API

    def a_job_failing_every_attempt_goes_dead(self):
        self.dead_id = enqueue_noop({"fail_times": 2})
        until(f"job {self.dead_id} to be dead",
              lambda: job_status(self.dead_id) == "dead", 30)
        # Enforced when a retry without the token is refused before the job is looked up.
        status, _ = api("POST", "/jobs/00000000000000000000000000/retry")
        self.token_enforced = status == 401
        return "ADMIN_TOKEN enforced" if self.token_enforced else "ADMIN_TOKEN not enforced"

    def the_features_have_data(self):
        # Reports: four servers, three steady ones and one with an outlier.
        reports = []
        for server, durations in (("web-1", [60] * 3), ("web-2", [60] * 3),
                                  ("web-3", [90] * 3), ("batch-9", [10, 10, 10, 400])):
            for i, seconds in enumerate(durations):
                reports.append({
                    "server_name": server,
                    "start_time": f"2026-01-0{i + 1}T10:00:00Z",
                    "end_time": f"2026-01-0{i + 1}T10:{seconds // 60:02d}:{seconds % 60:02d}Z",
                })
        status, body = api("POST", "/process_reports", reports)
        assert status == 202, f"POST /process_reports answered {status} {body}"
        # Ads: requests and impressions of one user.
        query = "sdk_version=2.1.0&session_id=s1&platform=ios&username=alice&country_code=DE"
        for path in [f"/ad?{query}"] * 4 + [f"/impression?{query}"] * 3:
            status, body = api("GET", path)
            assert status == 200, f"GET {path} answered {status} {body}"
        # Rates: a fetch from the sandbox.
        status, body = api("POST", "/rates/refresh", token=True)
        assert status == 202, f"POST /rates/refresh answered {status} {body}"
        rates_job = body["job_id"]
        until("the rates fetch to succeed", lambda: job_status(rates_job) == "succeeded", 30)
        until("the report statistics to open",
              lambda: api("GET", "/process_statistics")[0] == 200, 30)
        until("the ad counts to be applied",
              lambda: (lambda s, b: s == 200 and b["alice"]["impressions"] == 3)(
                  *api("GET", "/statistics?username=alice")), 30)

    # ---- the page

    def the_page_opens_and_the_overview_shows_the_default_queue(self):
        self.driver = browser()
        self.driver.get(f"{BASE}/ui")
        if READ_TOKEN:
            # The operator reads need a token: without one the page says so, and the
            # read-only token shows everything.
            until("the overview to ask for a token", lambda: (
                lambda e: e and e.is_displayed() and "READ_TOKEN" in e.text)(
                    find(self.driver, "#queues-error")), ui_wait)
            self.driver.find_element(By.ID, "admin-token").send_keys(READ_TOKEN)
        until("the default queue in the overview",
              lambda: find(self.driver, '#queues-body tr[data-queue="default"]'), ui_wait)
        until("a worker alive on the default queue",
              lambda: find(self.driver, '#workers .worker-group[data-queue="default"] li[data-worker]'),
              ui_wait)
        until("the live indicator", lambda: find(self.driver, '#live[data-state="live"]'), ui_wait)
        # Work while the page watches, so that throughput has something to draw.
        self.sleeper_id = enqueue_noop({"sleep_ms": 120000})
        enqueue_noop({"fail_times": 1})
        for batch in (4, 9, 6, 12, 7):
            for _ in range(batch):
                enqueue_noop({"sleep_ms": 20})
            time.sleep(2.1)
        until("the throughput chart", lambda: find(self.driver, "#throughput svg path.line"), ui_wait)
        until("a running job under its worker",
              lambda: find(self.driver, "#workers .worker-jobs a"), ui_wait)

    def the_chart_shows_the_servers_counts_after_a_reload(self):
        # The workers store their counts every THROUGHPUT_FLUSH_MS (5 s): wait for the
        # work above, successes and failed attempts, to be stored.
        succeeded, failed = until("the history to hold successes and failures", lambda: (
            lambda totals: totals if totals[0] > 0 and totals[1] > 0 else None)(history_totals()), 30)
        self.driver.refresh()

        def summary():
            element = find(self.driver, "#throughput-summary")
            text = element.text if element else ""
            found = re.search(r"([\d,]+) succeeded, ([\d,]+) failed in the last hour", text)
            if not found:
                return None
            shown = tuple(int(n.replace(",", "")) for n in found.groups())
            return (text, shown) if shown[0] >= succeeded and shown[1] >= failed else None
        # Counts only grow within the hour: at least what the server had before the reload.
        text, _ = until(f"the chart's summary to show >= {succeeded} succeeded and >= {failed} failed",
                        summary, ui_wait)
        until("the chart's two series", lambda: find(self.driver, "#throughput svg path.line.failed")
              and find(self.driver, "#throughput svg path.line.succeeded"), ui_wait)
        label = find(self.driver, "#throughput svg").get_attribute("aria-label")
        assert "succeeded" in label and "failed" in label, f"the chart's label is {label!r}"
        return text

    def the_failure_rate_shows_per_queue(self):
        def rates():
            status, body = api("GET", "/queues", token=True)
            assert status == 200, f"GET /queues answered {status} {body}"
            return {q["queue"]: q["failure_rate"] for q in body}
        # The default queue has had failed attempts (the dead job's, the one failing once).
        until("a failure rate of the default queue", lambda: (rates().get("default") or 0) > 0, 30)
        cell = 'tr[data-queue="{}"] td[data-field="failure_rate"]'

        def shown(queue):
            element = find(self.driver, "#queues-body " + cell.format(queue))
            return element.text if element else None
        text = until("the default queue's failure rate as a percentage", lambda: (
            lambda t: t if t and re.fullmatch(r"\d+\.\d %", t) and float(t.split()[0]) > 0 else None)(
                shown("default")), ui_wait)
        # A queue where nothing finished or failed has no rate: a dash, not 0 %.
        idle = [queue for queue, rate in rates().items() if rate is None]
        assert idle, "every queue has a failure rate; none to check the dash with"
        until(f"a dash for queue {idle[0]}", lambda: shown(idle[0]) == "–", ui_wait)
        return f"default {text}, {idle[0]} –"

    def a_focused_queue_button_keeps_focus_across_polls(self):
        row = '#queues-body tr[data-queue="default"]'
        count = until("the default queue's succeeded count", lambda: find(
            self.driver, f'{row} td[data-field="succeeded"] button'), ui_wait)
        pause = find(self.driver, f'{row} button[data-action="pause"]')
        self.driver.execute_script("arguments[0].focus()", count)
        before = count.text
        time.sleep(2 * poll_wait)
        assert has_focus(self.driver, count), "the focused count button lost the focus over two polls"
        assert find(self.driver, f'{row} button[data-action="pause"]') == pause, \
            "the Pause button was replaced by a poll"
        # The count still follows the server, in the same button.
        enqueue_noop({})
        until("the focused count to go up", lambda: count.text != before, ui_wait)
        assert has_focus(self.driver, count), "the count button lost the focus when its number changed"
        return f"succeeded {before} -> {count.text}, still focused"

    def nothing_can_be_changed_before_a_token_is_entered(self):
        if not self.token_enforced:
            return "skipped: the server does not ask for ADMIN_TOKEN"
        page = self.driver.current_window_handle
        # A tab of its own starts without a token (it is kept per tab), on a view where
        # a token would show Retry, Pause, Run now and the bulk buttons.
        self.driver.switch_to.new_window("tab")
        try:
            self.driver.get(f"{BASE}/ui#jobs?status=dead&job={self.dead_id}")
            kept = self.driver.execute_script("return sessionStorage.getItem('conveyor.adminToken')")
            assert not kept, f"a new tab starts with the token {kept!r}"
            for region in ("queues-error", "jobs-error", "schedules-error"):
                until(f"#{region} to ask for a token", lambda: (
                    lambda e: e and e.is_displayed() and "TOKEN" in e.text)(
                        find(self.driver, f"#{region}")), ui_wait)
            # A dead job (Retry), then a running one (Abort).
            for job_id in (self.dead_id, self.sleeper_id):
                if job_id != self.dead_id:
                    self.driver.get(f"{BASE}/ui#jobs?job={job_id}")
                time.sleep(poll_wait)
                shown = shown_changes(self.driver)
                assert not shown, f"shown before a token is entered, job {job_id} open: {shown}"
        finally:
            self.driver.close()
            self.driver.switch_to.window(page)

    def the_dead_job_is_listed_under_the_dead_filter(self):
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("dead")
        row = f'#jobs-body tr[data-job-id="{self.dead_id}"]'
        until("the dead job in the list", lambda: find(self.driver, f'{row}[data-status="dead"]'), ui_wait)

    def a_queue_count_lists_that_queues_jobs_only(self):
        click(self.driver, '#queues-body tr[data-queue="rates"] td[data-field="succeeded"] button',
              "the rates queue's succeeded count")
        until("the rates jobs", lambda: find(
            self.driver, '#jobs-body tr[data-queue="rates"][data-status="succeeded"]'), ui_wait)
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job-id]")
        others = [r.get_attribute("data-queue") for r in rows if r.get_attribute("data-queue") != "rates"]
        assert not others, f"jobs of other queues listed: {others}"
        selected = Select(self.driver.find_element(By.ID, "filter-queue")).first_selected_option
        assert selected.get_attribute("value") == "rates", "the queue filter does not say rates"
        # Back to every queue's dead jobs for the next steps.
        Select(self.driver.find_element(By.ID, "filter-queue")).select_by_value("")
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("dead")
        until("the dead job again", lambda: find(
            self.driver, f'#jobs-body tr[data-job-id="{self.dead_id}"]'), ui_wait)

    def the_read_token_offers_no_change(self):
        if not READ_TOKEN:
            return "skipped: the server has no READ_TOKEN"
        # The page holds the read token since it opened: it reads everything (the dead
        # job is listed), says the token reads only, and offers nothing the server would
        # refuse: no Retry on the dead job, no bulk retry, Pause or Run now.
        until("the page to say the token reads only", lambda: (
            lambda e: e and e.is_displayed() and "reads only" in e.text)(
                find(self.driver, "#token-access")), ui_wait)
        until("the dead job in the list", lambda: find(
            self.driver, f'#jobs-body tr[data-job-id="{self.dead_id}"][data-status="dead"]'), ui_wait)
        until("the overview's queues", lambda: find(self.driver, '#queues-body tr[data-queue="default"]'),
              ui_wait)
        time.sleep(poll_wait)
        present = self.driver.execute_script(
            "return document.querySelectorAll('button[data-action]').length")
        assert present, "the page rendered no operator button at all: nothing was checked"
        shown = shown_changes(self.driver)
        assert not shown, f"shown to the read token: {shown}"
        return f"{present} operator buttons rendered, none shown"

    def a_retry_with_the_token_runs_the_job_to_success(self):
        field = self.driver.find_element(By.ID, "admin-token")
        field.clear()
        field.send_keys(TOKEN)
        stored = self.driver.execute_script("return sessionStorage.getItem('conveyor.adminToken')")
        assert stored == TOKEN, f"sessionStorage holds {stored!r}"
        kept = self.driver.execute_script("return localStorage.getItem('conveyor.adminToken')")
        assert kept is None, f"the token is kept on disk (localStorage holds {kept!r})"
        row = f'#jobs-body tr[data-job-id="{self.dead_id}"]'
        until("the dead job's Retry button", lambda: (
            lambda e: e and e.is_displayed())(find(self.driver, f'{row} button[data-action="retry"]')),
            ui_wait)
        assert find(self.driver, f'{row} button[data-action="cancel"]') is None, \
            "a dead job cannot be cancelled, yet a Cancel button is shown"
        note = find(self.driver, "#token-access")
        assert note is not None and not note.is_displayed(), "the admin token is said to read only"
        click(self.driver, f'#jobs-body tr[data-job-id="{self.dead_id}"] button[data-action="retry"]',
              "Retry")
        until("the page to show the job succeeded",
              lambda: find(self.driver,
                           f'#job-detail[data-job-id="{self.dead_id}"][data-status="succeeded"]'
                           ' .badge[data-status="succeeded"]'),
              ui_wait)
        until("the success message", lambda: find(
            self.driver, '#action-message[data-kind="ok"]:not([hidden])'), ui_wait)
        assert job_status(self.dead_id) == "succeeded"
        # Its failed attempts stay visible in the panel, one per failure.
        status, record = api("GET", f"/jobs/{self.dead_id}", token=True)
        failed = len(record.get("attempt_log", []))
        assert failed >= 1, f"no attempt log in {record}"
        items = self.driver.find_elements(By.CSS_SELECTOR, "#job-detail #detail-attempts li")
        assert len(items) == failed, f"the panel shows {len(items)} failed attempts of {failed}"
        assert "failing on purpose" in items[0].text, items[0].text

    def the_list_shows_it_succeeded_a_few_pages_back(self):
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("succeeded")
        until("the succeeded filter to apply", lambda: find(
            self.driver, '#jobs-body tr[data-status="succeeded"]'), ui_wait)
        row = f'#jobs-body tr[data-job-id="{self.dead_id}"][data-status="succeeded"]'
        pages = 1
        # Newer jobs fill the first pages: follow "Older" until it shows (a few pages).
        while find(self.driver, row) is None:
            assert pages < 10, "the job is not on the first 10 pages of succeeded jobs"
            first = find(self.driver, "#jobs-body tr[data-job-id]").get_attribute("data-job-id")
            click(self.driver, "#page-older", "Older")
            pages += 1
            until(f"page {pages}", lambda: (lambda e: e is not None and e.get_attribute(
                "data-job-id") != first)(find(self.driver, "#jobs-body tr[data-job-id]")), ui_wait)
            label = self.driver.find_element(By.ID, "page-label").text
            assert label == f"page {pages}", f"the pager says {label!r}"
        found_on = pages
        # Back to the newest page of every status, the job still in the panel.
        while pages > 1:
            click(self.driver, "#page-newer", "Newer")
            pages -= 1
            until(f"page {pages} again", lambda: self.driver.find_element(
                By.ID, "page-label").text == f"page {pages}", ui_wait)
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("")
        assert find(self.driver, f'#job-detail[data-job-id="{self.dead_id}"][data-status="succeeded"]')
        return f"found on page {found_on}"

    def a_job_row_opens_from_the_keyboard(self):
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("succeeded")
        until("two succeeded jobs, and nothing else, listed", lambda: (
            lambda rows: len(rows) >= 2 and all(r.get_attribute("data-status") == "succeeded" for r in rows))(
                self.driver.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job-id]")), ui_wait)
        if find(self.driver, "#detail-close"):
            click(self.driver, "#detail-close", "the panel's Close")
            until("the panel to close", lambda: not find(self.driver, "#job-detail").is_displayed(), ui_wait)
        # From the last filter, Tab goes into the list. Succeeded jobs have no Retry or
        # Cancel, so what takes the focus there is the row's own way to open the job.
        self.driver.execute_script("document.getElementById('filter-limit').focus()")
        press(self.driver, Keys.TAB)
        first = focused_job_row(self.driver)
        focused = self.driver.switch_to.active_element
        assert first, f"Tab from the filters went to {focused.tag_name} {focused.text!r}, not a job row"
        outline = self.driver.execute_script(
            "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]")
        assert outline[0] != "none" and outline[1] != "0px", f"no visible focus: outline {outline}"
        press(self.driver, Keys.ENTER)
        until("Enter to open the focused job", lambda: (lambda e: e and e.is_displayed())(
            find(self.driver, f'#job-detail[data-job-id="{first}"]')), ui_wait)
        time.sleep(poll_wait)
        assert focused_job_row(self.driver) == first, "the opened row lost the focus"
        press(self.driver, Keys.TAB)
        second = focused_job_row(self.driver)
        assert second and second != first, f"Tab from the first row went to row {second!r}"
        press(self.driver, Keys.SPACE)
        until("Space to open the next job", lambda: (lambda e: e and e.is_displayed())(
            find(self.driver, f'#job-detail[data-job-id="{second}"]')), ui_wait)
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("")

    def an_id_prefix_lists_that_job_only(self):
        job_id = enqueue_noop({})
        until(f"job {job_id} to succeed", lambda: job_status(job_id) == "succeeded", 30)
        # Its first 20 characters (time and some randomness) in lower case: ids are
        # Crockford base32, matched whatever the case.
        prefix = job_id[:20].lower()
        field = self.driver.find_element(By.ID, "filter-id")
        field.clear()
        field.send_keys(prefix)
        until("exactly that job listed", lambda: [
            r.get_attribute("data-job-id")
            for r in self.driver.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job-id]")] == [job_id],
            ui_wait)
        until("the address to carry the id", lambda: f"id={prefix}" in self.driver.current_url, ui_wait)
        self.driver.refresh()
        until("the id kept over a reload", lambda: find(self.driver, "#filter-id").get_attribute(
            "value") == prefix and [
            r.get_attribute("data-job-id")
            for r in self.driver.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job-id]")] == [job_id],
            ui_wait)
        # A letter no id has (U) is refused by the server with a 400: its message shows,
        # nothing is listed, and the page goes on.
        field = self.driver.find_element(By.ID, "filter-id")
        field.send_keys("U")
        error = until("the server's refusal", lambda: (
            lambda e: e if e and e.is_displayed() and "id must be" in e.text else None)(
                find(self.driver, "#jobs-error")), ui_wait)
        text = error.text
        until("no job listed under a refused filter",
              lambda: not self.driver.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job-id]"), ui_wait)
        assert field.get_attribute("aria-invalid") == "true", "the refused field is not marked invalid"
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)  # as a person empties it: an input event, as clear() is not
        until("the list back once the field is empty", lambda: len(self.driver.find_elements(
            By.CSS_SELECTOR, "#jobs-body tr[data-job-id]")) > 1, ui_wait)
        until("the id gone from the address", lambda: "id=" not in self.driver.current_url, ui_wait)
        until("the refusal gone", lambda: not find(self.driver, "#jobs-error").is_displayed(), ui_wait)
        until("the live indicator", lambda: find(self.driver, '#live[data-state="live"]'), ui_wait)
        return f"shown: {text!r}"

    def the_kind_filter_offers_every_kind(self):
        field = until("the kind filter's list of kinds", lambda: (
            lambda f: f if f and f.get_attribute("list") == "kinds" else None)(
                find(self.driver, "#filter-kind")), ui_wait)
        offered = until("every queue's kinds offered", lambda: (
            lambda names: names if {"ads.count", "math.factorial", "system.noop"} <= set(names) else None)(
                self.driver.execute_script(
                    "return [...document.querySelectorAll('#kinds option')].map((o) => o.value)")), ui_wait)
        assert len(offered) == len(set(offered)), f"a kind offered twice: {offered}"
        return f"{field.get_attribute('id')} offers {', '.join(offered)}"

    def a_running_job_is_aborted_from_its_panel(self):
        job_id = enqueue_noop({"sleep_ms": 600000})
        until(f"job {job_id} to run", lambda: job_status(job_id) == "running", 30)
        # Its link in the workers panel keeps the keyboard focus across polls.
        self.driver.get(f"{BASE}/ui")
        link = until("the running job in the workers panel", lambda: find(
            self.driver, f'#workers a[data-job-id="{job_id}"]'), ui_wait)
        self.driver.execute_script("arguments[0].focus()", link)
        time.sleep(5)  # more than two polls
        assert has_focus(self.driver, link), "the workers panel was rebuilt under the focus"
        self.driver.get(f"{BASE}/ui#jobs?job={job_id}")
        panel = f'#job-detail[data-job-id="{job_id}"]'
        until("its Abort button", lambda: find(
            self.driver, f'{panel}[data-status="running"] button[data-action="abort"]'), ui_wait)
        # Aborting is for the panel only; a running job's row offers nothing.
        assert find(self.driver, f'#jobs-body tr[data-job-id="{job_id}"] button[data-action]') is None, \
            "the running job's row shows an action"
        click(self.driver, f'{panel} button[data-action="abort"]', "Abort")
        alert = self.driver.switch_to.alert
        assert f"Abort job {job_id}?" in alert.text, alert.text
        alert.accept()
        # An earlier step's "ok" message may still show: wait for this one's.
        message = until("the abort's message", lambda: (
            lambda e: e if e and job_id in e.text and "aborted" in e.text else None)(find(
                self.driver, '#action-message[data-kind="ok"]:not([hidden])')), ui_wait)
        text = message.text
        until("the panel to show it cancelled", lambda: find(
            self.driver, f'{panel}[data-status="cancelled"] .badge[data-status="cancelled"]'), ui_wait)
        assert find(self.driver, f'{panel} button[data-action="abort"]') is None, \
            "a cancelled job still offers Abort"
        assert job_status(job_id) == "cancelled", f"job {job_id} is {job_status(job_id)}"
        return f"shown: {text!r}"

    def relative_times_in_the_job_panel_keep_ticking(self):
        job_id = enqueue_noop({})
        until(f"job {job_id} to succeed", lambda: job_status(job_id) == "succeeded", 30)
        self.driver.get(f"{BASE}/ui#jobs?job={job_id}")
        first = until("the job's age in the panel", lambda: (
            lambda text: text if text and "s ago" in text else None)(created_in_panel(self.driver)),
            ui_wait)
        # A succeeded job does not change: the panel is not fetched anew, its age still grows.
        time.sleep(2.2)
        later = created_in_panel(self.driver)
        assert later != first, f"the job's age stayed {first!r} for 2 s"
        return f"{first!r} -> {later!r}"

    def what_is_scrolled_to_is_not_under_the_header(self):
        """At a desktop, tablet and phone width: a link to a job scrolls to the jobs,
        and on one column opening a job scrolls to its panel; neither under the header."""
        def settled_top(css):
            # Smooth scrolling takes a moment: the top once it stops moving.
            tops = []
            def still():
                tops.append(self.driver.execute_script(
                    "return document.querySelector(arguments[0]).getBoundingClientRect().top", css))
                return len(tops) > 3 and max(tops[-4:]) - min(tops[-4:]) < 1
            until(f"{css} to stop moving", still, ui_wait)
            return tops[-1]

        header_bottom = "return document.querySelector('.topbar').getBoundingClientRect().bottom"
        seen = []
        for width, height in ((1280, 900), (800, 1000), (390, 844)):
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 640})
            self.driver.get("about:blank")
            self.driver.get(f"{BASE}/ui#jobs?job={self.dead_id}")
            until("the linked job's panel", lambda: find(
                self.driver, f'#job-detail[data-job-id="{self.dead_id}"]'), ui_wait)
            until("the list", lambda: find(self.driver, "#jobs-body tr[data-job-id]"), ui_wait)
            top = settled_top("#jobs")
            bottom = self.driver.execute_script(header_bottom)
            # Just below the header: neither under it nor left where the page first put it.
            assert bottom - 1 <= top <= max(bottom, 0) + 64, \
                f"at {width} px the linked jobs start at {top:.0f} px, the header ends at {bottom:.0f} px"
            seen.append(f"{width}: link {top:.0f} >= {bottom:.0f}")
            if width > 1000:
                continue  # two columns: the panel is beside the list, nothing scrolls
            other = self.driver.execute_script(
                "return [...document.querySelectorAll('#jobs-body tr[data-job-id]')]"
                ".map((r) => r.dataset.jobId).find((id) => id !== arguments[0])", self.dead_id)
            click(self.driver, f'#jobs-body tr[data-job-id="{other}"] td', "another job's row")
            until("its panel", lambda: find(self.driver, f'#job-detail[data-job-id="{other}"]'), ui_wait)
            top = settled_top("#job-detail")
            bottom = self.driver.execute_script(header_bottom)
            assert bottom - 1 <= top < height, \
                f"at {width} px the opened job's panel is at {top:.0f} px, the header ends at {bottom:.0f} px"
            seen.append(f"panel {top:.0f} >= {bottom:.0f}")
        return "; ".join(seen)

    def the_token_survives_a_reload(self):
        self.driver.refresh()
        field = until("the page to load again", lambda: find(self.driver, "#admin-token"), ui_wait)
        assert field.get_attribute("value") == TOKEN, "the admin token was not kept"
        until("the overview again", lambda: find(
            self.driver, '#queues-body tr[data-queue="default"]'), ui_wait)

    def bulk_on_dead_jobs(self, count, button_id, label, confirm, done):
        """`count` new dead jobs of the default queue, then the bulk button `button_id`
        under the dead filter, confirmed; the jobs' ids once the page says `done`."""
        ids = [enqueue_noop({"fail_times": 2}) for _ in range(count)]
        for job_id in ids:
            until(f"job {job_id} to be dead", lambda: job_status(job_id) == "dead", 30)
        Select(self.driver.find_element(By.ID, "filter-queue")).select_by_value("default")
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("dead")
        button = until(f"the {label} button", lambda: find(
            self.driver, f"#{button_id}:not([hidden])"), ui_wait)
        assert button.text == label, f"the bulk button says {button.text!r}"
        button.click()
        alert = self.driver.switch_to.alert
        assert f"{confirm} of queue default" in alert.text, alert.text
        alert.accept()
        # The previous step's "ok" message may still show: wait for this action's own.
        message = until("the bulk result", lambda: (
            lambda e: e if e and done in e.text else None)(find(
                self.driver, '#action-message[data-kind="ok"]:not([hidden])')), ui_wait)
        text = message.text
        assert f"{count} jobs {done}" in text, text
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("")
        Select(self.driver.find_element(By.ID, "filter-queue")).select_by_value("")
        return ids

    def dead_jobs_are_retried_in_bulk(self):
        # A retry's fresh budget lets them pass.
        ids = self.bulk_on_dead_jobs(3, "bulk-action", "Retry all dead",
                                     "Retry every dead job", "enqueued again")
        for job_id in ids:
            until(f"job {job_id} to succeed", lambda: job_status(job_id) == "succeeded", 30)

    def a_paused_queue_holds_its_jobs_until_resumed(self):
        row = '#queues-body tr[data-queue="default"]'
        click(self.driver, f'{row} button[data-action="pause"]', "Pause")
        alert = self.driver.switch_to.alert
        assert "Pause queue default" in alert.text, alert.text
        alert.accept()
        until("the paused badge", lambda: find(self.driver, f'{row} .badge[data-status="paused"]'),
              ui_wait)
        # Every worker reads the pause within QUEUE_PAUSE_POLL_MS (1 s by default).
        time.sleep(2)
        job_id = enqueue_noop({})
        time.sleep(2)
        assert job_status(job_id) == "queued", "a job of a paused queue ran"
        until("the waiting job's latency", lambda: (lambda e: e and e.text not in ("", "–"))(
            find(self.driver, f'{row} td[data-field="latency"]')), ui_wait)
        click(self.driver, f'{row} button[data-action="resume"]', "Resume")
        until("the resume message", lambda: (lambda e: e if e and "resumed" in e.text else None)(
            find(self.driver, '#action-message:not([hidden])')), ui_wait)
        until(f"job {job_id} to succeed once resumed", lambda: job_status(job_id) == "succeeded", 30)
        until("the badge to go", lambda: find(self.driver, f'{row} .badge[data-status="paused"]') is None
              or None, ui_wait)

    def dead_jobs_are_discarded_in_bulk(self):
        ids = self.bulk_on_dead_jobs(2, "bulk-discard", "Discard all dead",
                                     "Delete every dead job", "discarded")
        for job_id in ids:
            status, _ = api("GET", f"/jobs/{job_id}", token=True)
            assert status == 404, f"discarded job {job_id} answered {status}"

    def a_timetable_runs_now(self):
        row = '#schedules-body tr[data-schedule="rates.ingest"]'
        click(self.driver, f'{row} button[data-action="run-now"]', "Run now")
        message = until("the run's message", lambda: (
            lambda e: e if e and "runs now" in e.text else None)(find(
                self.driver, '#action-message[data-kind="ok"]:not([hidden])')), ui_wait)
        job_id = message.text.split("job ")[1].split(".")[0]
        until(f"job {job_id} to succeed", lambda: job_status(job_id) == "succeeded", 30)
        until("the run as the timetable's last", lambda: (
            lambda e: e and "run_now" in e.text)(find(self.driver, row)), ui_wait)

    def a_link_opens_a_job_with_its_filters(self):
        self.driver.get(f"{BASE}/ui#jobs?status=succeeded&queue=default&job={self.dead_id}")
        until("the linked job's panel", lambda: find(
            self.driver, f'#job-detail[data-job-id="{self.dead_id}"]'), ui_wait)
        selected = lambda id_: Select(self.driver.find_element(By.ID, id_)).first_selected_option \
            .get_attribute("value")
        assert (selected("filter-status"), selected("filter-queue")) == ("succeeded", "default"), \
            "the link's filters are not shown"
        until("the linked filters' jobs", lambda: find(
            self.driver, '#jobs-body tr[data-queue="default"][data-status="succeeded"]'), ui_wait)
        # A filter chosen on the page goes into the address, and a reload keeps it.
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("dead")
        until("the address to follow the filter", lambda: "status=dead" in self.driver.current_url,
              ui_wait)
        self.driver.refresh()
        until("the filter kept over a reload", lambda: selected("filter-status") == "dead", ui_wait)
        until("the job kept over a reload", lambda: find(
            self.driver, f'#job-detail[data-job-id="{self.dead_id}"]'), ui_wait)
        Select(self.driver.find_element(By.ID, "filter-status")).select_by_value("")
        Select(self.driver.find_element(By.ID, "filter-queue")).select_by_value("")

    def schedules_and_features_render(self):
        until("the rates timetable, off", lambda: find(
            self.driver, '#schedules-body tr[data-schedule="rates.ingest"] .badge[data-status="off"]'),
            ui_wait)
        until("the last rates fetch as succeeded", lambda: find(
            self.driver, '#schedules-body tr[data-schedule="rates.ingest"] .badge[data-status="succeeded"]'),
            ui_wait)
        until("rates", lambda: find(self.driver, '#feature-rates [data-currency="USD"]'), ui_wait)
        until("report statistics", lambda: find(self.driver, "#feature-reports .tiles"), ui_wait)
        outliers = until("the outlier", lambda: find(self.driver, "#feature-outliers .chip"), ui_wait)
        assert outliers.text == "batch-9", f"outliers show {outliers.text!r}"
        self.driver.find_element(By.ID, "ads-key").send_keys("alice")
        click(self.driver, '#ads-form button[type="submit"]', "Look up")
        until("the ad statistics of alice", lambda: find(self.driver, "#feature-ads .tiles"), ui_wait)
        self.driver.find_element(By.ID, "ads-key").clear()
        self.driver.find_element(By.ID, "ads-key").send_keys("nobody")
        click(self.driver, '#ads-form button[type="submit"]', "Look up")
        until("the 404 message of an unknown user", lambda: (lambda e: e and "not found" in e.text)(
            find(self.driver, "#feature-ads .message")), ui_wait)
        self.driver.find_element(By.ID, "ads-key").clear()
        self.driver.find_element(By.ID, "ads-key").send_keys("alice")
        click(self.driver, '#ads-form button[type="submit"]', "Look up")
        until("alice again", lambda: find(self.driver, "#feature-ads .tiles"), ui_wait)

    def a_focused_run_now_keeps_the_focus_across_polls(self):
        button = until("the Run now button", lambda: find(
            self.driver, '#schedules-body tr[data-schedule="rates.ingest"] button[data-action="run-now"]'),
            ui_wait)
        self.driver.execute_script("arguments[0].focus()", button)
        time.sleep(2 * poll_wait)
        assert has_focus(self.driver, button), "the focused Run now lost the focus over two polls"

    def the_page_logs_no_script_error(self):
        logs = self.driver.get_log("browser")
        # Answers such as 404 or 409 are logged by the browser as failed loads; the page
        # shows them as messages. Anything else severe is a script error.
        errors = [e["message"] for e in logs
                  if e.get("level") == "SEVERE" and "Failed to load resource" not in e["message"]]
        assert not errors, f"script errors: {errors}"

    def desktop_screenshot(self):
        self.driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.5)
        full_page_screenshot(self.driver, SHOT_DESKTOP, 1280)
        return SHOT_DESKTOP

    def dark_screenshot(self):
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        background = self.driver.execute_script(
            "return getComputedStyle(document.body).backgroundColor")
        self.driver.save_screenshot(SHOT_DARK)
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        assert background == "rgb(14, 17, 22)", f"the dark palette is not applied: {background}"
        return SHOT_DARK

    def phone_layout_fits_and_screenshot(self):
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
        self.driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(2.5)  # one poll: the chart redraws at the new width
        overflow = self.driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow}px wider than a phone"
        assert find(self.driver, '#queues-body tr[data-queue="default"]').is_displayed()
        full_page_screenshot(self.driver, SHOT_PHONE, 390)
        return SHOT_PHONE


def main():
    run = Run()
    try:
        run.check("a job failing every attempt goes dead (JSON API)",
                  run.a_job_failing_every_attempt_goes_dead, needs_page=False)
        run.check("reports, ads and rates are seeded (JSON API)",
                  run.the_features_have_data, needs_page=False)
        run.check("the page opens and the overview shows the default queue",
                  run.the_page_opens_and_the_overview_shows_the_default_queue)
        run.check("the throughput chart shows the server's counts after a reload",
                  run.the_chart_shows_the_servers_counts_after_a_reload)
        run.check("the failure rate column shows a rate, and a dash where nothing finished",
                  run.the_failure_rate_shows_per_queue)
        run.check("a focused queue button keeps the focus across polls; its count still changes",
                  run.a_focused_queue_button_keeps_focus_across_polls)
        run.check("the dead job is listed under the dead filter",
                  run.the_dead_job_is_listed_under_the_dead_filter)
        run.check("the read token reads everything and is offered no button that changes something",
                  run.the_read_token_offers_no_change)
        run.check("no button that changes something shows before a token is entered",
                  run.nothing_can_be_changed_before_a_token_is_entered)
        run.check("a queue's count lists that queue's jobs only",
                  run.a_queue_count_lists_that_queues_jobs_only)
        run.check("a retry with the admin token runs the job; the page shows it succeeded",
                  run.a_retry_with_the_token_runs_the_job_to_success)
        run.check("the list shows it succeeded, following Older pages",
                  run.the_list_shows_it_succeeded_a_few_pages_back)
        run.check("a job row takes the keyboard focus; Enter and Space open it",
                  run.a_job_row_opens_from_the_keyboard)
        run.check("dead jobs are retried in bulk, after a confirmation",
                  run.dead_jobs_are_retried_in_bulk)
        run.check("a paused queue holds its jobs until resumed",
                  run.a_paused_queue_holds_its_jobs_until_resumed)
        run.check("dead jobs are discarded in bulk, after a confirmation",
                  run.dead_jobs_are_discarded_in_bulk)
        run.check("schedules and features render, errors as messages",
                  run.schedules_and_features_render)
        run.check("a focused Run now keeps the focus across polls",
                  run.a_focused_run_now_keeps_the_focus_across_polls)
        run.check("a timetable runs now from its row", run.a_timetable_runs_now)
        run.check("a link opens a job with its filters; a reload keeps them",
                  run.a_link_opens_a_job_with_its_filters)
        run.check("an id prefix lists that job only, kept in the address; a bad one shows the 400",
                  run.an_id_prefix_lists_that_job_only)
        run.check("the kind filter offers the kinds of every queue",
                  run.the_kind_filter_offers_every_kind)
        run.check("a running job is aborted from its panel, after a confirmation",
                  run.a_running_job_is_aborted_from_its_panel)
        run.check("relative times in the job panel keep ticking",
                  run.relative_times_in_the_job_panel_keep_ticking)
        run.check("the page logs no script error", run.the_page_logs_no_script_error)
        run.check("desktop screenshot", run.desktop_screenshot)
        run.check("dark palette screenshot (viewport)", run.dark_screenshot)
        run.check("the phone layout fits 390 px; phone screenshot",
                  run.phone_layout_fits_and_screenshot)
        run.check("a link or an opened job is not scrolled under the header (1280, 800, 390 px)",
                  run.what_is_scrolled_to_is_not_under_the_header)
        run.check("the admin token survives a reload", run.the_token_survives_a_reload)
    finally:
        if run.driver is not None:
            try:
                run.driver.quit()
            except WebDriverException:
                pass
    print(f"ui: {run.passed} passed, {run.failed} failed", flush=True)
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
