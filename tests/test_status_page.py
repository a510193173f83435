"""``status DIR --serve`` and ``--html``: the page, driven in a real headless Chromium.

One browser for the module; the pages are of a real local 64-shard sweep (failed
items, one shard killed with SIGKILL while the page watches) and of a synthetic
10,000-shard sweep of records. Where no browser can be had the browser tests
skip with the reason; ``REQUIRE_BROWSER=1`` (set by ``.ci/run``) fails them instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.browser import Browser, no_browser
from bench.status_read import write_sweep
from tests.conftest import REPO, launch_argv, need_slurm, status

ONE_WORKER = pytest.mark.xdist_group("test_status_page")  # one browser for them (SLURM's: its own)
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "outputs" / "test-artifacts"))
# What the page drew, read back from the canvas: each cell's state by its centre pixel.
DRAWN = """
const p = window.statusPage, c = document.getElementById("grid");
const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
const byColour = {};
for (const [state, colour] of Object.entries(p.colours)) byColour[colour] = state;
const out = [];
for (let i = 0; i < p.layout.n; i++) {
  const q = p.cell(i), x = Math.floor(q.x + q.w / 2), y = Math.floor(q.y + q.w / 2);
  const k = (y * c.width + x) * 4;
  const hex = "#" + [0, 1, 2].map((j) => data[k + j].toString(16).padStart(2, "0")).join("");
  out.push(byColour[hex] || hex);
}
return out;
"""


@pytest.fixture(scope="module")
def browser() -> Iterator:
    reason = no_browser()
    if reason:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"no browser, and REQUIRE_BROWSER=1: {reason}")
        pytest.skip(f"no browser: {reason}")
    b = Browser()
    try:
        yield b.driver
    finally:
        b.quit()


class Served:
    """``status DIR --serve --port 0`` in its own process, as a user starts it."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "launcher", "status", str(directory), "--serve", "--port", "0"]
            + list(extra),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert "(read-only; Ctrl-C stops)" in line, line + self.proc.stderr.read()
        self.url = line.split(": ", 1)[1].split()[0]
        assert self.url.startswith("http://127.0.0.1:")

    def json(self) -> dict:
        with urllib.request.urlopen(self.url + "status.json", timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a user stops it: the exit code and what it printed after the URL."""
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, out


@contextlib.contextmanager
def served(directory: Path) -> Iterator[Served]:
    s = Served(directory)
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            code, out = s.stop()
            assert code == 0 and out.strip() == "stopped", (code, out)


def wait_for(driver, script: str, timeout: float = 60, what: str = "") -> object:
    """Poll ``script`` in the page until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or script}")


def as_json(directory: Path) -> dict:
    r = status(directory, "--json", "--failed")
    assert r.returncode in (0, 1, 3), r.stderr
    return json.loads(r.stdout)


def hover(driver, index: int, click: bool = False) -> str:
    """Move the mouse onto cell ``index`` of the grid (and click it); the tip's text."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "grid")
    cell = driver.execute_script(f"return window.statusPage.cell({index})")
    size = canvas.size
    dx = cell["x"] + cell["w"] / 2 - size["width"] / 2
    dy = cell["y"] + cell["w"] / 2 - size["height"] / 2
    actions = ActionChains(driver).move_to_element_with_offset(canvas, int(dx), int(dy))
    (actions.click() if click else actions).perform()
    return wait_for(
        driver,
        "const t = document.getElementById('tip'); return !t.hidden && t.textContent",
        10,
        "the tip",
    )


def screenshot(driver, name: str) -> Path:
    """A PNG of the whole page, kept in ``$TEST_ARTIFACTS`` (default outputs/test-artifacts)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height + 100, 600), 4000))
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), path
    driver.set_window_size(1280, 1000)
    return path


def keep_for_readme(shot: Path) -> None:
    """With ``README_SCREENSHOT=1``: the README's picture (docs/status-page.png), made small."""
    if os.environ.get("README_SCREENSHOT") != "1":
        return
    from PIL import Image

    with Image.open(shot) as im:
        small = im.convert("RGB").crop((0, 0, im.width, min(im.height, 760)))
        small = small.quantize(colors=64, method=Image.Quantize.FASTOCTREE)  # keeps small swatches
        small.save(REPO / "docs" / "status-page.png", optimize=True)


def shards_line(doc: dict) -> str:
    """The page's totals line, from the document the terminal prints."""
    n = doc["totals"]["shards"]
    order = ("pending", "held", "running", "done", "failed", "stale")
    return f"shards: {n['total']} ({', '.join(f'{n[s]} {s}' for s in order if n[s])})"


# -- a real local sweep, watched until it ends ----------------------------------------------------


@ONE_WORKER
def test_a_live_sweep_is_watched_to_its_end_with_failures_and_a_killed_shard(browser, tmp_path):
    fault = tmp_path / "fault"
    fault.touch()
    sweep = tmp_path / "sweep"
    args = [
        "task=squares",
        f"task.output_dir={tmp_path / 'out'}",
        "task.n=128",  # two items per shard
        "task.fail_mod=50",  # items 0, 50, 100 fail: shards 0, 50, 36
        f"task.fault_file={fault}",
        "task.hang_key=000010",  # shard 10 hangs until the test kills it
        "backbone.num_workers=1",
        "shard.num=64",
        "run.heartbeat_s=0.5",
        "hydra/launcher=local",
        "hydra.launcher.wait=false",
        "hydra.launcher.array_parallelism=3",
        f"hydra.sweep.dir={sweep}",
        "-m",
    ]
    r = subprocess.run(launch_argv(*args), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    hung = sweep / "10" / "progress.json"
    try:
        with served(sweep) as server:
            browser.get(server.url)
            wait_for(browser, "return window.statusPage.refreshes > 0", what="the first refresh")
            banner = browser.find_element("id", "banner")
            assert banner.text.startswith("Running; this page refreshes every 2")
            deadline = time.monotonic() + 90
            while not hung.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            os.killpg(json.loads(hung.read_text())["pid"], signal.SIGKILL)
            wait_for(
                browser,
                "return document.getElementById('banner').textContent.startsWith('Every shard')",
                180,
                "the page to say the sweep ended",
            )
            doc = as_json(sweep)
            page_doc = server.json()
            drawn = browser.execute_script(DRAWN)
            tip = hover(browser, 10)
            shot = screenshot(browser, "status-page-64.png")
            text = browser.find_element("tag name", "body").text
    finally:
        if hung.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(json.loads(hung.read_text())["pid"], signal.SIGKILL)

    n = doc["totals"]["shards"]
    assert (n["total"], n["done"], n["failed"]) == (64, 60, 4), n
    assert drawn == [s["state"] for s in doc["shards"]]
    assert Counter(drawn) == {s: c for s, c in n.items() if s != "total" and c}
    assert "Every shard has ended: 60 done, 4 failed" in banner.text
    assert shards_line(doc) in text
    assert "exit -9 without writing report.json" in tip and "state: failed" in tip
    assert f".err: {sweep}/logs/local-0_10.err" in tip and "exit code: -9" in tip
    assert "ValueError 3 3 item 000000 (shard-0-of-64): bad item 0" in text
    assert "command" in text.lower() and "hydra.launcher.array_parallelism=3" in text
    key = doc["arrays"][0]["key"]
    assert len(key) >= 8 and key in text  # the config hash
    assert same_document(page_doc, doc)
    assert shot.stat().st_size > 10_000
    keep_for_readme(shot)


def same_document(served_doc: dict, printed: dict) -> bool:
    """The served document is the printed one, but for when each was read."""

    def timeless(doc: dict) -> dict:
        doc = {**doc, "updated_at": None}
        doc["shards"] = [{**s, "heartbeat_age_s": None} for s in doc["shards"]]
        return doc

    return timeless(served_doc) == timeless(printed)


# -- a synthetic 10,000-shard sweep -------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """10,000 shards: of every 100, 90 done, 5 running (this process's heartbeat, which stays
    fresh for the module's time), 4 failed, 1 pending."""
    directory = tmp_path_factory.mktemp("big") / "sweep"
    return Path(write_sweep(str(directory), 10_000, heartbeat_s=3600.0))


def unchanged_is_not_sent_again(url: str) -> bool:
    """A poll naming the version it has gets 304 and no body (tried thrice: the server may
    have read a newer one in between)."""
    for _ in range(3):
        with urllib.request.urlopen(url, timeout=30) as r:
            tag = r.headers["ETag"]
        again = urllib.request.Request(url, headers={"If-None-Match": tag})
        try:
            urllib.request.urlopen(again, timeout=30).close()
        except urllib.error.HTTPError as e:  # urllib raises on a 304
            if e.code == 304:
                return True
            raise
    return False


@ONE_WORKER
def test_the_served_json_is_the_status_json_document(big):
    with served(big) as server:
        assert same_document(server.json(), as_json(big))
        assert unchanged_is_not_sent_again(server.url + "status.json")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url + "nothing", timeout=30)
        assert e.value.code == 404
        post = urllib.request.Request(server.url + "status.json", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(post, timeout=30)
        assert e.value.code == 501  # read-only


@ONE_WORKER
def test_a_10000_shard_page_draws_every_shard_and_its_notes(browser, big):
    doc = as_json(big)
    with served(big) as server:
        browser.get(server.url)
        wait_for(browser, "return window.statusPage.refreshes > 0", what="the first refresh")
        drawn = browser.execute_script(DRAWN)
        failed = next(i for i, s in enumerate(doc["shards"]) if s["state"] == "failed")
        tip = hover(browser, failed, click=True)  # pinned: it stays while the mouse moves on
        assert hover(browser, failed + 1) == tip
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        text = browser.find_element("tag name", "body").text
    assert drawn == [s["state"] for s in doc["shards"]]
    assert Counter(drawn)["failed"] == doc["totals"]["shards"]["failed"] == 400
    assert doc["shards"][failed]["note"] in tip and f"shard {failed}" in tip
    assert {u.rsplit("/", 1)[1] for u in resources} == {"status.json"}  # no CDN, nothing else
    assert shards_line(doc) in text and "Running; this page refreshes" in text
    assert "ValueError 1200 400" in text


@ONE_WORKER
def test_html_writes_the_same_page_as_one_file(browser, big, tmp_path):
    out = tmp_path / "status.html"
    r = status(big, "--html", str(out))
    assert r.returncode == 1, r.stderr  # failed shards: as `status` says
    assert r.stdout.startswith(f"wrote {out}: the status of {big} at ")
    browser.get(out.as_uri())
    wait_for(browser, "return window.statusPage.firstPaintMs !== null", what="the first paint")
    drawn = browser.execute_script(DRAWN)
    page = browser.execute_script(
        "return [window.statusPage.doc, performance.getEntriesByType('resource').length]"
    )
    text = browser.find_element("tag name", "body").text
    assert page[1] == 0  # one self-contained file
    doc = as_json(big)
    assert same_document(page[0], doc)
    assert drawn == [s["state"] for s in doc["shards"]]
    assert "Still running when this snapshot was taken." in text


@ONE_WORKER
def test_a_running_cell_shows_how_far_its_shard_has_got(browser, tmp_path):
    sweep = Path(write_sweep(str(tmp_path / "sweep"), 100, heartbeat_s=3600.0))  # 40/100 done
    out = tmp_path / "page.html"
    assert status(sweep, "--html", str(out)).returncode == 1
    browser.get(out.as_uri())
    wait_for(browser, "return window.statusPage.firstPaintMs !== null", what="the first paint")
    bar = browser.execute_script(
        """const p = window.statusPage, i = p.doc.shards.findIndex(s => s.state === "running");
        const q = p.cell(i), ctx = document.getElementById("grid").getContext("2d");
        const at = (f) => Array.from(ctx.getImageData(q.x + Math.floor(q.w * f), q.y + q.w - 1,
                                                      1, 1).data.slice(0, 3));
        return [i, at(0.2), at(0.6), q.w];"""
    )
    assert bar[0] == 90 and bar[3] >= 8
    assert bar[1] == [0x0B, 0x3D, 0x66]  # 20% of the way: done (40%)
    assert bar[2] != [0x0B, 0x3D, 0x66]  # 60%: not yet


@ONE_WORKER
def test_what_records_say_is_shown_as_text_never_run_as_markup(browser, tmp_path):
    sweep = Path(write_sweep(str(tmp_path / "sweep"), 2, states=("failed",), heartbeat_s=3600.0))
    hostile = "</script><script>window.hacked = 1</script><b id=bold>{{config}}</b> & more"
    line = {"item": "<i>it</i>", "error": "Oops<img src=x>", "message": hostile, "traceback": ""}
    (sweep / "0" / "failures.jsonl").write_text(json.dumps(line) + "\n")
    out = tmp_path / "page.html"
    assert status(sweep, "--html", str(out)).returncode == 1
    browser.get(out.as_uri())
    wait_for(browser, "return window.statusPage.firstPaintMs !== null", what="the first paint")
    found = browser.execute_script(
        "return [window.hacked, document.scripts.length, document.getElementById('bold'),"
        " document.querySelectorAll('img').length]"
    )
    text = browser.find_element("id", "failures").text
    assert found == [None, 3, None, 0]
    assert hostile in text and "Oops<img src=x>" in text and "<i>it</i>" in text


@ONE_WORKER
def test_a_sweep_record_damaged_while_served_is_named_on_the_page_beside_the_shards(
    browser, tmp_path
):
    sweep = Path(write_sweep(str(tmp_path / "sweep"), 4, heartbeat_s=3600.0))
    with served(sweep) as server:
        browser.get(server.url)
        wait_for(browser, "return window.statusPage.refreshes > 0", what="the first refresh")
        (sweep / ".launcher" / "sweep.json").write_text("{")  # torn, as by a full disk
        problem = wait_for(
            browser,
            "const p = document.getElementById('problem'); return !p.hidden && p.textContent",
            30,
            "the page to name the damaged record",
        )
        document = server.json()
        drawn = browser.execute_script(DRAWN)
    # as the terminal status: the shards' own records are shown, the damage named
    assert "sweep.json is damaged" in document["damaged"], document.get("damaged")
    assert "sweep.json is damaged" in problem and "shards' own records" in problem
    assert drawn == ["done"] * 4


# -- what a user can get wrong --------------------------------------------------------------------


@ONE_WORKER
def test_serve_and_html_refuse_what_cannot_work(tmp_path):
    big = Path(write_sweep(str(tmp_path / "sweep"), 4, heartbeat_s=3600.0))
    with served(big) as server:
        port = server.url.rsplit(":", 1)[1].strip("/")
        taken = status(big, "--serve", "--port", port)
    assert taken.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr and "--port 0" in taken.stderr
    elsewhere = status(big, "--serve", "--port", "0", "--host", "192.0.2.1")  # TEST-NET-1
    assert elsewhere.returncode == 2 and "--host must be an address of this machine" in (
        elsewhere.stderr
    )
    missing = status(tmp_path / "nowhere", "--serve", "--port", "0")
    assert missing.returncode == 2 and "no such directory" in missing.stderr
    unwritable = status(big, "--html", str(tmp_path / "no" / "such" / "dir" / "x.html"))
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr
    for args, message in [
        (("--port", "9"), "--port and --host go with --serve"),
        (("--serve", "--json"), "--serve shows the page itself"),
        (("--html", "x.html", "--watch"), "--html writes one snapshot"),
        (("--serve", "--port", "70000"), "a port is 0 to 65535"),
    ]:
        r = status(big, *args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)


# -- a SLURM sweep --------------------------------------------------------------------------------


@pytest.mark.slurm  # with the other SLURM tests, on their worker (conftest.py)
@pytest.mark.timeout(240)
def test_a_slurm_sweeps_page_shows_each_shards_slurm_state_and_job(browser, launch, tmp_path):
    need_slurm()
    fault = tmp_path / "fault"
    fault.touch()
    r = launch(
        "task=squares",
        f"task.output_dir={tmp_path / 'out'}",
        "task.n=8",
        "task.fail_mod=5",  # items 0 and 5 fail: shards 0 and 1 of 4
        f"task.fault_file={fault}",
        "shard.num=4",
        "hydra/launcher=slurm",
        "hydra.launcher.wait=true",
        "backbone.num_workers=1",
        "backbone.start_method=fork",
        multirun=True,
        timeout=150,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    sweep = launch.job_dir
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # sacct lags a few seconds behind the jobs
        doc = as_json(sweep)
        if [s["slurm_state"] for s in doc["shards"]] == ["FAILED", "FAILED", *["COMPLETED"] * 2]:
            break
        time.sleep(0.5)
    out = tmp_path / "page.html"
    assert status(sweep, "--html", str(out)).returncode == 1
    browser.get(out.as_uri())
    wait_for(browser, "return window.statusPage.firstPaintMs !== null", what="the first paint")
    drawn = browser.execute_script(DRAWN)
    tip = hover(browser, 1)
    assert drawn == ["failed", "failed", "done", "done"]
    one = doc["shards"][1]
    assert f"SLURM: FAILED, job {one['slurm_id']}" in tip and f".err: {one['log']}.err" in tip
    assert "exit code: 1" in tip and "shard 1 (shard-1-of-4)" in tip
