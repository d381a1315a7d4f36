"""The notebooks' widgets in a real browser: JupyterLab, headless Chromium, driven through the UI by Playwright.

Starts JupyterLab on a free local port with a temporary root holding copies of notebooks 03 and 07, runs each
notebook with JupyterLab's own Run All command (each in a fresh workspace of its own, checked to have started within
seconds; a cell that raises or an execution that stops fails at once with the reason), then changes every control of
its widget with the mouse or the keyboard and asserts that the widget's text and its plot change. Screenshots of every step go to a
temporary folder (printed; kept by pytest under its tmp_path). Notebook 07 reads the shipped results.

A third test builds the book (`make book`, tools/build_book.py) into a temporary folder, serves it over HTTP,
follows its table of contents from the landing page to every notebook and checks that each page's figures load.

Needs Debian's Chromium (`apt-get install -y chromium`; .ci/run installs it) and Playwright for Python
(a dependency of the kit; it cannot download its own browsers here, so it is pointed at /usr/bin/chromium).
Without Chromium the tests fail in CI (CI=true) with a one-line message and are skipped elsewhere.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from safs_lite.paths import REPO_ROOT

NOTEBOOKS = ("03_activation_library.ipynb", "07_reproduce_paper.ipynb")
INSTALL = "chromium not found: install it with `apt-get update && apt-get install -y chromium` (as root)"


def _missing(message: str) -> None:
    """Fail in CI (CI=true), skip elsewhere: a missing browser must not pass CI silently."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(message)


def _chromium() -> str:
    """Chromium's path; fails (CI) or skips with one line saying how to install it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _missing(INSTALL)
    try:
        import playwright  # noqa: F401
    except ImportError:
        _missing("playwright not installed: `pip install playwright` (a dependency of the kit: `make install`)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free port whose root is a temporary folder with the two notebooks."""
    chromium = _chromium()
    root = tmp_path_factory.mktemp("lab_root")
    for name in NOTEBOOKS:
        shutil.copy(REPO_ROOT / "notebooks" / name, root / name)
    home = tmp_path_factory.mktemp("lab_home")
    port, token = _free_port(), "safs-browser-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "OMP_NUM_THREADS": "1"}
    env.pop("MPLBACKEND", None)  # the kernel draws inline, as for a user (the test session sets Agg)
    # Every cell stays in the page while others scroll past (no notebook windowing), so a widget cell that Run All
    # has left behind can still be found.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    log = open(home / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.expose_app_in_browser=True"],  # window.jupyterapp: the tests run cells through its commands
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start; its log: {home / 'lab.log'}")
            time.sleep(0.5)
    yield {"url": url, "token": token, "chromium": chromium, "root": root}
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def chromium_browser():
    """Headless Chromium through Playwright, one per module (Playwright's sync API allows one at a time)."""
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def browser(lab, chromium_browser):
    return chromium_browser


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots: {folder}")
    return folder


ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in front (each test opens one, in its own workspace)

# JavaScript run in the page through JupyterLab's application object (the server exposes it as window.jupyterapp).
_PANEL = """name => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.context || !panel.sessionContext) return {ready: false, why: 'no notebook in front yet'};
  if (panel.context.path !== name) return {ready: false, why: `the notebook in front is ${panel.context.path}`};
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  cells.forEach((c, i) => {
    for (let k = 0; k < c.model.outputs.length; k++) {
      const o = c.model.outputs.get(k);
      if (o.type === 'error') errors.push(`code cell ${i + 1}: ${o.toJSON().ename}: ${o.toJSON().evalue}`);
    }
  });
  return {ready: !!kernel && kernel.status === 'idle', kernel: kernel ? kernel.status : 'none',
          ran: cells.filter(c => c.model.executionCount !== null).length, cells: cells.length,
          running: cells.filter(c => (c.promptNode && c.promptNode.textContent || '').includes('*')).length,
          errors};
}"""
_RUN_ALL = """async name => {
  const app = window.jupyterapp, panel = app.shell.currentWidget;
  if (panel.context.path !== name) return `the notebook in front is ${panel.context.path}`;
  await app.commands.execute('notebook:clear-all-cell-outputs');
  app.commands.execute('notebook:run-all-cells');  // resolves when every cell has run: not awaited
  return 'ok';
}"""


def _answer_kernel_dialog(page) -> None:
    """JupyterLab asks "Select Kernel" when a notebook opens before the kernel list has loaded: accept its choice."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and "Select Kernel" in dialog.first.inner_text():
        dialog.locator("button.jp-mod-accept").first.click()


def panel_state(page, name: str) -> dict:
    return page.evaluate(_PANEL, name)


def wait_for_kernel(page, name: str, timeout_s: float = 90) -> None:
    """Wait until `name` is the notebook in front and its kernel reports idle; fail naming what is missing."""
    deadline, now = time.time() + timeout_s, {"why": "the page has no JupyterLab application yet"}
    while time.time() < deadline:
        _answer_kernel_dialog(page)
        now = page.evaluate("() => !!window.jupyterapp") and panel_state(page, name) or now
        if now.get("ready") and not page.locator(".jp-Dialog").count():
            return
        time.sleep(0.5)
    raise AssertionError(f"{name}: not ready within {timeout_s} s ({now.get('why') or 'kernel ' + now['kernel']})")


def run_all(page, name: str, tries: int = 3, within_s: float = 15) -> None:
    """Clear the outputs and run every cell of `name` with JupyterLab's own command (no menu click to lose), then check
    within seconds that a cell started; retry, then fail with the reason."""
    for _ in range(tries):
        wait_for_kernel(page, name)
        answer = page.evaluate(_RUN_ALL, name)
        assert answer == "ok", f"{name}: Run All not sent ({answer})"
        deadline = time.time() + within_s
        while time.time() < deadline:
            now = panel_state(page, name)
            if now.get("ran") or now.get("running") or now.get("kernel") == "busy":
                return
            time.sleep(0.25)
    raise AssertionError(f"{name}: no cell started within {within_s} s of Run All ({tries} tries; last: {now})")


def open_and_run(browser, lab, shots, name: str, widget: str, timeout_s: float = 480):
    """Open a notebook in a fresh JupyterLab workspace of its own (no tab of another test restored beside it), run all
    its cells and wait for `widget` to render, failing at once with the reason if a cell raises or execution stops."""
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    workspace = re.sub(r"\W", "", name.split(".")[0])
    page.goto(f"{lab['url']}/lab/workspaces/w{workspace}/tree/{name}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    run_all(page, name)
    cell = page.locator(f"{ACTIVE} .jp-CodeCell", has=page.locator(widget)).last
    deadline, idle_since = time.time() + timeout_s, None
    while not cell.count():
        now = panel_state(page, name)
        why = ("; ".join(now["errors"]) if now.get("errors") else
               f"the kernel is {now['kernel']}" if now.get("kernel") in ("dead", "unknown", "none") else
               f"execution stopped after {now['ran']} of {now['cells']} code cells without the widget"
               if idle_since and time.time() - idle_since > 20 else
               f"no widget after {timeout_s} s ({now['ran']} of {now['cells']} code cells run)"
               if time.time() > deadline else None)
        if why:
            page.screenshot(path=shots / f"failed_{name}.png", full_page=True)
            raise AssertionError(f"{name}: {why}")
        busy = now.get("kernel") == "busy" or now.get("running")
        idle_since = None if busy else (idle_since or time.time())
        time.sleep(1)
    cell.evaluate("el => el.scrollIntoView({block: 'start'})")
    cell.locator(".widget-output img").first.wait_for(timeout=60_000)
    news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "notified about news?" toast
    if news.count():
        news.first.click()
    cell.evaluate("el => el.scrollIntoView({block: 'start'})")
    return page, cell


def state(cell) -> tuple[str, str]:
    """What the widget shows: its HTML text and the plot image's data."""
    return cell.locator(".widget-html-content").first.inner_text(), \
        cell.locator(".widget-output img").first.get_attribute("src")


def wait_change(cell, before: tuple[str, str], what: str, timeout_s: float = 30) -> tuple[str, str]:
    """Wait until the widget's text and plot both differ from `before`; fail naming `what` if they do not."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            now = state(cell)
        except Exception:  # the output is being redrawn
            now = before
        if now[0] != before[0] and now[1] and now[1] != before[1]:
            return now
        time.sleep(0.25)
    raise AssertionError(f"{what}: the widget's text or plot did not change within {timeout_s} s")


def drag(page, handle, dx: float) -> None:
    """Drag a slider handle dx pixels to the right with the mouse."""
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=8)
    page.mouse.up()


def test_the_activation_explorer_reacts_to_every_control(browser, lab, shots):
    t0 = time.perf_counter()
    page, cell = open_and_run(browser, lab, shots, NOTEBOOKS[0], ".widget-dropdown")
    before = state(cell)
    assert "searched by SAFS" in before[0] and "f(0) = 0.000" in before[0]  # swish, the default
    page.screenshot(path=shots / "03_0_start.png")

    cell.locator(".widget-dropdown select").select_option("tanh")
    now = wait_change(cell, before, "operator menu (swish -> tanh)")
    assert "<b>" not in now[0] and "tanh" in now[0] and "f(5) = 1.000" in now[0]
    page.screenshot(path=shots / "03_1_tanh.png")

    sliders = cell.locator(".widget-slider")
    assert sliders.count() == 2
    width = sliders.first.locator(".noUi-target, .slider-container").first.bounding_box()["width"]
    assert width >= 300, f"the sliders are {width:.0f} px wide"
    drag(page, sliders.nth(0).locator(".noUi-handle").first, width / 4)  # alpha up
    after_alpha = wait_change(cell, now, "alpha slider (dragged)")
    assert "f(5) = 1.000" not in after_alpha[0]
    page.screenshot(path=shots / "03_2_alpha.png")

    readout = sliders.nth(1).locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("2.5")
    page.keyboard.press("Enter")
    after_beta = wait_change(cell, after_alpha, "beta number box (typed 2.5)")
    assert "2.50" in readout.inner_text()
    page.screenshot(path=shots / "03_3_beta.png")
    cell.evaluate("el => el.scrollIntoView({block: 'start'})")

    cell.locator(".widget-dropdown select").select_option("relu")
    after_relu = wait_change(cell, after_beta, "operator menu (tanh -> relu)")
    assert "the baseline" in after_relu[0]
    page.screenshot(path=shots / "03_4_relu.png")
    page.close()
    print(f"03: {time.perf_counter() - t0:.0f} s")


def test_the_run_browser_reacts_to_every_control(browser, lab, shots):
    t0 = time.perf_counter()
    # the run browser's own table: notebook 07 has an earlier widget with a menu too (the masks slider)
    page, cell = open_and_run(browser, lab, shots, NOTEBOOKS[1], "table.safs-runs")
    cell.evaluate("el => el.scrollIntoView({block: 'start'})")
    selects = cell.locator(".widget-dropdown select")
    assert selects.count() == 3
    sparsity, pruning, seed = (selects.nth(i) for i in range(3))
    assert sparsity.locator("option").all_inner_texts() == ["99%"]  # the shipped sweep is 99% only
    assert pruning.locator("option").all_inner_texts() == ["global", "layer-wise"]
    before = state(cell)
    assert "test accuracy (%)" in before[0] and "SAFS gain (points)" in before[0]
    table = cell.locator("table.safs-runs td").first
    assert table.evaluate("td => getComputedStyle(td).borderTopStyle") == "solid"  # the table has borders
    page.screenshot(path=shots / "07_0_start.png")

    pruning.select_option(label="layer-wise")
    now = wait_change(cell, before, "pruning menu (global -> layer-wise)")
    page.screenshot(path=shots / "07_1_layerwise.png")
    seed.select_option(label="2")
    after_seed = wait_change(cell, now, "seed menu (0 -> 2)")
    page.screenshot(path=shots / "07_2_seed2.png")
    sparsity.select_option(label="99%")  # the one option: choosing it again keeps the run
    time.sleep(1)
    assert state(cell) == after_seed
    page.close()
    print(f"07: {time.perf_counter() - t0:.0f} s")


# ---------------------------------------------------------------- the book (`make book`)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The book built from the committed notebooks into a temporary folder, served over HTTP on a free port."""
    import functools
    import http.server
    import threading

    _chromium()
    out = tmp_path_factory.mktemp("book")
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "build_book.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out / "html"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}"}
    server.shutdown()


def test_the_book_links_every_notebook_and_its_figures_load(book, chromium_browser):
    notebooks = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    page = chromium_browser.new_page()
    page.goto(f"{book['url']}/index.html")
    assert "Start here: the notebooks" in page.title() + page.locator("h1").first.inner_text()
    toc = page.locator(".toctree-wrapper a.reference.internal")
    links = {a.get_attribute("href").split("#")[0] for a in toc.all()}
    assert {f"{n}.html" for n in notebooks} <= links, f"the table of contents lacks {sorted(links)}"
    for name in notebooks:
        page.goto(f"{book['url']}/index.html")
        page.locator(f".toctree-wrapper a[href='{name}.html']").first.click()  # follow the table of contents
        page.wait_for_load_state("load")
        assert page.url.endswith(f"/{name}.html"), page.url
        images = page.locator("article img")
        assert images.count() >= 1, f"{name}: no figure on the page"
        broken = page.evaluate("() => [...document.querySelectorAll('article img')]"
                               ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken, f"{name}: figures that do not load: {broken}"
    page.close()


def test_the_book_folds_each_solution_until_it_is_clicked(book, chromium_browser):
    """Each exercise, the quiz and the "Why?" questions render with their solution folded right after them: hidden
    when the page loads, shown (code and its stored "correct") once the reader clicks its title."""
    import json

    notebooks = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    page = chromium_browser.new_page()
    for path in notebooks:
        exercises = sum(bool(re.search(r'check\(\s*f?"\d\d\.', "".join(c["source"])))
                        for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        page.goto(f"{book['url']}/{path.stem}.html")
        folds = page.locator("article details.safs-solution")
        assert folds.count() == exercises + 1, f"{path.stem}: {folds.count()} folded solutions, {exercises} exercises"
        titles = [t.strip() for t in folds.locator("summary").all_inner_texts()]
        assert any(t.startswith("Answers to quiz") for t in titles), f"{path.stem}: {titles}"
        assert any(t.startswith("Model answers") for t in titles), f"{path.stem}: {titles}"
        first = folds.first
        body = first.locator(".sd-card-body")
        assert first.get_attribute("open") is None and not body.is_visible(), f"{path.stem}: a solution shown unfolded"
        first.locator("summary").click()
        body.wait_for(state="visible", timeout=5_000)
        assert re.search(r"exercise \d\d\.\w+: correct", body.inner_text()), f"{path.stem}: {body.inner_text()[:300]}"
    page.close()
