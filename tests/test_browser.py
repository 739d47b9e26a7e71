"""The main path in a real browser: Playwright drives Debian's chromium (never a downloaded browser) against
`streamlit run app.py` on a free local port with a fresh data folder. It uploads a corpus carrying <script>
and onerror payloads through the real file picker, trains two tiny models, opens Compare, Hidden states,
Gates and Gradients, and checks that charts render, no exception box appears and no payload ran.
Screenshots go to test-artifacts/."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from lmcore.runs.store import RunStore

from .conftest import REPO, grammar_lines, wait_for_streamlit

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
PAYLOADS = ("<script>window.__pwned=1</script>", "<img/src=x/onerror=window.__pwned=2>")


def corpus_text() -> str:
    """The grammar sentences, every tenth line carrying both payloads (so train, valid and test have them)."""
    lines = grammar_lines(600)
    return "\n".join(f"{PAYLOADS[0]} {line} {PAYLOADS[1]}" if i % 10 == 0 else line
                     for i, line in enumerate(lines)) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


ZIPF = "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"  # the Corpus page's chart
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@contextmanager
def streamlit_server(home: Path, log_path: Path, **env):
    """`streamlit run app.py` on a free local port with `home` as its data folder (env: more variables; None
    removes one), until the block ends; then no traceback may be in its log. Yields {"url", "home", "port"}."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    ".ci/run does this")
    port = free_port()
    log = open(log_path, "w+")
    variables = dict(os.environ, LMCORE_HOME=str(home), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **env)
    variables = {k: v for k, v in variables.items() if v is not None}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.fileWatcherType", "none"], cwd=REPO, env=variables, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://localhost:{port}"
    try:
        wait_for_streamlit(url, proc, log)
        ARTIFACTS.mkdir(exist_ok=True)
        yield {"url": url, "home": home, "port": port}
    finally:  # the server ends with the block, whatever happened in it
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    log.seek(0)
    text = log.read()
    assert not unexpected_tracebacks(text), text[-3000:]


def unexpected_tracebacks(log: str) -> bool:
    """Whether the server's log has a traceback other than Streamlit's own report of a tab that went away while
    it was sending (a reload, a closed context): uvicorn's "Exception in ASGI application" whose every exception
    is starlette's WebSocketDisconnected, with no frame of this project's code. Anything else fails the test."""
    if "Traceback" not in log:
        return False
    ours = re.search(rf'File "{re.escape(str(REPO))}/(?!\.venv/)', log)
    raised = re.findall(r"(?m)^([A-Za-z_][\w.]*): ", log)  # the exception lines, at the start of a line
    return bool(ours) or not raised or any(name != "starlette.websockets.WebSocketDisconnected" for name in raised)


@contextmanager
def chromium():
    """Debian's chromium under Playwright; each test opens its contexts (a context is one browser's cookies)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser):
    # 1440 px wide as a laptop; tall, because Streamlit scrolls inside the page and a screenshot shows the viewport
    context = browser.new_context(viewport={"width": 1440, "height": 2600})
    context.set_default_timeout(60_000)
    return context


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser") / "home"
    # LMCORE_START_PAGE unset: the user's landing, where a new data folder opens on the Lecture tour
    with streamlit_server(home, tmp_path_factory.mktemp("log") / "streamlit.log", LMCORE_START_PAGE=None) as served:
        yield served


@pytest.fixture(scope="module")
def page(app):
    with chromium() as browser:
        yield new_context(browser).new_page()


def settle(page, what: str) -> None:
    """Wait for the script run to end, check no exception box and no payload ran, and keep a screenshot."""
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    page.wait_for_timeout(500)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()
    for frame in page.frames:  # the page and every iframe (st.html, components) alike
        assert frame.evaluate("typeof window.__pwned") == "undefined", (what, frame.url)
    page.screenshot(path=str(ARTIFACTS / f"browser-{what}.png"), full_page=True)


def open_view(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for()


def charts(page, at_least: int) -> int:
    page.locator(".js-plotly-plot").nth(at_least - 1).wait_for(timeout=120_000)
    return page.locator(".js-plotly-plot").count()


def test_the_app_listens_on_localhost_only(app):
    addresses = listening_addresses(app["port"])
    assert addresses and addresses <= LOOPBACK, addresses


def test_a_new_data_folder_opens_on_the_lecture_tour(app, page):
    """Issue 16: the landing page of a new data folder is the Lecture: ten steps, a chart at each (from the demo
    runs), a self-check answer revealed on click, a "try it" link per step that names its page and state."""
    start = time.monotonic()
    page.goto(app["url"])
    page.get_by_role("heading", name="The lecture, on trained models").wait_for(timeout=60_000)
    first = time.monotonic() - start
    assert charts(page, 10) == 10
    (ARTIFACTS / "lecture-load.txt").write_text(f"cold server: title {first:.1f} s, ten charts "
                                                f"{time.monotonic() - start:.1f} s\n")  # measured, not asserted
    settle(page, "0-lecture")
    headings = page.locator("h2").all_inner_texts()
    assert [h.split(" · ")[0].strip() for h in headings if " · " in h] == [str(i) for i in range(1, 11)], headings
    assert page.locator(".js-plotly-plot").count() == 10
    assert "shipped with the app" in page.get_by_test_id("stAlert").first.inner_text()
    links = page.get_by_role("link", name=re.compile("^Try it"))
    assert links.count() == 10
    hrefs = [links.nth(i).get_attribute("href") for i in range(10)]
    assert all("?" in h for h in hrefs), hrefs
    assert any(re.search(r"memory\?.*runs_view=", h) for h in hrefs), hrefs
    assert any(re.search(r"gates\?.*src=1", h) for h in hrefs), hrefs
    question = page.get_by_text(re.compile("^Self-check: Which model can use the word")).first
    question.click()
    answer = page.get_by_text(re.compile("its bar flips sign when")).first
    answer.wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "browser-0-lecture-answer.png"), full_page=True)


def test_first_paint_of_the_corpus_page(app, page):
    """Issue 13's target: the Corpus page's table and chart within 4 s of opening (2 cores). Measured and kept
    in the artifacts, not asserted: the machines are noisy; the README gives the figure."""
    times = []
    page = page.context.new_page()
    page.set_viewport_size({"width": 1440, "height": 900})
    for attempt in ("first open", "second open"):
        start = time.monotonic()
        page.goto(f"{app['url']}/corpus")
        page.locator('[data-testid="stTable"] table').first.wait_for(timeout=60_000)
        table = time.monotonic() - start
        page.locator(ZIPF).first.wait_for(timeout=60_000)
        times.append(f"{attempt}: table {table:.2f} s, chart {time.monotonic() - start:.2f} s")
    (ARTIFACTS / "first-paint.txt").write_text("\n".join(times) + "\n")
    print("first paint:", "; ".join(times))
    assert page.get_by_role("heading", name="python-docs").count() >= 1  # the built-in default corpus
    page.close()


def test_upload_train_two_and_inspect_in_a_real_browser(app, page):
    page.goto(f"{app['url']}/corpus")
    page.get_by_role("heading", name="Corpus").first.wait_for()
    page.get_by_text("upload a .txt file").click()
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": corpus_text().encode()}])
    page.get_by_role("heading", name="notes.txt").first.wait_for()
    # whitespace tokens keep each payload whole, so the pages show them as one token
    page.get_by_test_id("stSelectbox").filter(has_text="Tokenizer").click()
    page.get_by_role("option", name="word", exact=True).click()
    page.get_by_role("heading", name="notes.txt · word").first.wait_for()
    settle(page, "1-corpus")
    shown = page.locator("code").all_inner_texts()
    assert PAYLOADS[0] in shown and PAYLOADS[1] in shown  # drawn as text, not run
    page.locator(ZIPF).first.wait_for()

    open_view(page, "Train")
    slider = page.get_by_test_id("stSlider").filter(has_text="Runs").get_by_role("slider")
    slider.focus()
    slider.press("ArrowLeft")  # 3 runs -> 2
    page.get_by_role("button", name="Train 2 models").wait_for()
    for i in range(2):
        page.get_by_test_id("stExpander").filter(has_text="Advanced").nth(i).locator("summary").click()
        field = page.get_by_label("Hidden units", exact=True).nth(i)  # tied: the embedding follows it
        field.fill("16")
        field.press("Enter")
        settle(page, "2-train-settings")
    page.get_by_role("button", name="Train 2 models").click()
    store = RunStore(app["home"])
    while len(store.list_runs()) < 2:
        time.sleep(0.2)
    page.reload()  # mid-training: the corpus, the form and the runs are all still there
    page.get_by_text("Training on notes.txt · word").wait_for()
    page.get_by_role("button", name="Train 2 models").wait_for()  # the form came back with its 2 runs
    page.get_by_text("Every run in this data folder").wait_for()
    settle(page, "2b-train-reloaded")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = store.list_runs()
        if len(runs) == 2 and all(r["status"] not in ("queued", "starting", "running") for r in runs):
            break
        time.sleep(0.5)
    runs = store.list_runs()
    assert [r["status"] for r in runs] == ["done", "done"], [r["message"] for r in runs]
    assert all(r["params"] < 20_000 for r in runs)  # the sizes typed into the Advanced panels were used
    page.get_by_text("done", exact=True).nth(1).wait_for(timeout=30_000)
    assert charts(page, 2) >= 2
    settle(page, "3-train-done")

    open_view(page, "Compare")
    assert charts(page, 1) >= 1
    settle(page, "4-compare")

    open_view(page, "Hidden states")  # the newest run, on its validation text
    assert charts(page, 1) >= 1
    settle(page, "5-hidden")
    assert page.get_by_text(PAYLOADS[0]).count() >= 1  # in the text coloured by a unit, as text

    open_view(page, "Gates")
    assert charts(page, 3) >= 3
    settle(page, "6-gates")

    open_view(page, "Gradients through time")
    assert charts(page, 2) >= 2
    settle(page, "7-gradients")

    for title, at_least in (("Next word", 1), ("Word representations", 1)):
        open_view(page, title)
        assert charts(page, at_least) >= at_least
        page.get_by_text("your newest finished").first.wait_for()  # the user's own run, not a demo
        settle(page, f"8-{title.lower().replace(' ', '-')}")

    open_view(page, "Train")  # the form the user left is still there (Streamlit forgets a page's widgets)
    page.get_by_role("button", name="Train 2 models").wait_for()
    assert page.get_by_label("Hidden units", exact=True).first.input_value() == "16"


def test_a_sweep_refreshes_by_itself(app, page):
    """Start a tiny sweep on the user's corpus and watch it finish without a reload: the fragment redraws."""
    page.goto(f"{app['url']}/sweeps?sw_variants=vanilla&sw_variants=NIG&sw_seeds=1&sw_hidden=8&sw_bptt=8"
              "&sw_batch=4&sw_epochs=1")
    start = page.get_by_role("button", name="Start sweep of 2 runs")
    start.click()
    page.wait_for_timeout(1500)
    assert start.is_disabled()  # a second click cannot start the same sweep again
    settle(page, "9-sweep-running")
    page.locator("[data-testid='stProgress']").filter(has_text="2/2 done").wait_for(timeout=240_000)
    assert charts(page, 1) >= 1
    settle(page, "10-sweep-done")
    assert len(RunStore(app["home"]).list_sweeps()) == 1


def test_seeds_as_a_group_with_a_band_and_every_figure_and_table_downloads(app, page, tmp_path):
    """Issue 18: three seeds of one model in the store show on Compare as one row "± … (3 seeds)" and a band on the
    curves; with SVG chosen in the sidebar a chart's toolbar saves SVG; a table's toolbar downloads CSV."""
    import math
    from dataclasses import replace

    from .conftest import tiny_config
    text = tmp_path / "seeds.txt"
    text.write_text("\n".join(grammar_lines(300)) + "\n")
    store = RunStore(app["home"])
    cfg = tiny_config(text, "lstm")
    for seed, best in ((1, 50.0), (2, 52.0), (3, 54.0)):
        run = store.create_run(replace(cfg, name="seeded", train=replace(cfg.train, seed=seed)).to_dict(),
                               status="done")
        store.update_run(run, best_valid_ppl=best, test_ppl=best + 1, params=1234, vocab=40, tokens_per_s=5000.0,
                         device="cpu", started_at=1.0, finished_at=3.5)
        for i, value in enumerate((best + 30, best + 10, best)):
            store.add_metrics(run, {"step": 10 * (i + 1), "epoch": float(i + 1), "lr": 1.0, "train_loss": 3.0,
                                    "valid_loss": math.log(value), "valid_ppl": value, "tokens_per_s": 5000.0,
                                    "wall_time": float(i)})
    page.goto(f"{app['url']}/compare?cmp_corpus={text.name}&fig_format=SVG")  # a bound choice: its label in the URL
    page.get_by_role("heading", name="Seeds as groups").wait_for(timeout=60_000)
    settle(page, "11-compare-seeds")
    plot = page.locator(".js-plotly-plot").first
    plot.wait_for()
    assert plot.locator(".legendtext", has_text="seeded (3 seeds)").count() == 1  # the table's row: AppTest checks it
    assert plot.locator("path.js-fill").count() >= 1  # the seeds' band
    plot.hover()
    camera = plot.locator(".modebar-btn[data-title*='Download plot']")
    camera.first.wait_for(timeout=10_000)
    assert camera.first.get_attribute("data-title") == "Download plot"  # Plotly says "… as a png" for a PNG
    table = page.get_by_test_id("stDataFrame").first
    table.hover()
    download = page.get_by_role("button", name=re.compile("Download", re.I))
    download.first.wait_for(timeout=10_000)
    assert download.count() >= 1


def test_the_server_log_check_lets_only_streamlits_disconnect_report_through():
    disconnect = ("Exception in ASGI application\nTraceback (most recent call last):\n"
                  '  File "/x/.venv/lib/python3.11/site-packages/streamlit/web/server/app.py", line 9, in ws\n'
                  "starlette.websockets.WebSocketDisconnected: WebSocket is not connected.\n\nDuring handling of the "
                  "above exception, another exception occurred:\n\nTraceback (most recent call last):\n"
                  "starlette.websockets.WebSocketDisconnected: Cannot call \"send\" once a close message has been sent.\n")
    assert not unexpected_tracebacks("  URL: http://localhost:8501\n  Stopping...\n")
    assert not unexpected_tracebacks(disconnect)
    assert unexpected_tracebacks(disconnect.replace("starlette.websockets.WebSocketDisconnected: Cannot",
                                                    "ValueError: Cannot"))  # another error after it
    assert unexpected_tracebacks(disconnect.replace('"/x/.venv/lib/python3.11/site-packages/streamlit/web/server',
                                                    f'"{REPO}/appstate'))  # raised through this project's code
