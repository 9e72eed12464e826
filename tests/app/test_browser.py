"""The app in a real browser: headless Chromium (Debian's) driven by Playwright.

Starts the server on a free localhost port, opens every page, moves a slider, clicks patches,
and checks every figure as drawn: no exception box, every Plotly chart at least 120 x 120 px with
at least one trace, every image at least 120 px wide. Saves a screenshot of each page in
test-artifacts/ (Reconstruct also with ConMIM and with BootMAE picked), and the PNGs it downloads
(download-*.png: a picture with its caption beneath, a chart with its facts' footer).
"""

import shutil
import sys
import time

from .browsing import ARTIFACTS, CHARTS, PAGES, ROOT, TEACHER, check_figures, screenshot, settle

def sixteen_bit_png() -> bytes:
    """A 16-bit grey ramp with a dark garment-like block: clipped, it would be nearly all white."""
    import io

    import numpy as np
    from PIL import Image

    ramp = np.tile(np.linspace(0, 65535, 56), (56, 1)).astype(np.uint16)
    ramp[14:42, 20:36] = 30000
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    return buffer.getvalue()


def downloaded_png(page, click):
    """The PNG a click downloads, as an array (H, W, 3), and its file saved in test-artifacts/."""
    import io

    import numpy as np
    from PIL import Image

    with page.expect_download(timeout=60_000) as got:
        click()
    path = ARTIFACTS / f"download-{got.value.suggested_filename}"
    got.value.save_as(path)
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB")), path


def check_the_idea_and_the_downloads(page) -> None:
    """Learn's first screen shows the image with 75% hidden and the model's fill-in above the story's
    words, computed live (another mask seed, other pictures); a picture's PNG has its caption beneath,
    a chart's PNG its facts' footer under the plot."""
    pictures = page.locator('[data-testid="stImage"] img')
    # measured once the three pictures have loaded: until then they are short and the story sits higher
    page.wait_for_function("""() => { const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
        return imgs.length >= 3 && imgs.slice(0, 3).every(i => i.complete && i.naturalHeight > 0); }""")
    page.wait_for_timeout(300)
    idea = [pictures.nth(i).bounding_box() for i in range(3)]
    story = page.get_by_text("Masked image modeling").first.bounding_box()
    assert all(box["y"] + box["height"] <= story["y"] for box in idea), (idea, story)
    assert page.get_by_text("of 49 patches hidden: what the model is given").count() == 1
    assert page.get_by_text("simmim's fill-in").count() == 1
    before = [pictures.nth(i).get_attribute("src") for i in (1, 2)]
    seed = page.get_by_label("Mask seed")
    seed.fill("3")
    seed.press("Enter")
    settle(page)
    assert [pictures.nth(i).get_attribute("src") for i in (1, 2)] != before  # live: the mask and the fill-in moved
    screenshot(page, ARTIFACTS / "learn-idea-first.png")
    natural = pictures.nth(2).evaluate("img => [img.naturalWidth, img.naturalHeight]")
    png, _ = downloaded_png(page, lambda: page.get_by_role("button", name="⬇ PNG").nth(2).click())
    assert png.shape[0] >= natural[1] + 16 and png.shape[1] >= natural[0]  # the caption's lines beneath
    beneath = png[natural[1] + 2:]
    assert (beneath.min(-1) < 100).any(), "no caption text under the picture"
    chart = page.locator(CHARTS).first
    chart.scroll_into_view_if_needed()
    facts = chart.evaluate("""gd => { const a = (gd.layout.annotations || []).find(a => a.name === 'facts') || {};
        return [gd._fullLayout.height, gd._fullLayout.margin.b, a.text || '', a.yshift || 0]; }""")
    assert "checkpoints/simmim" in facts[2] and "seed 3" in facts[2], facts
    chart.hover()
    png, _ = downloaded_png(page, lambda: chart.locator('.modebar-btn').first.click())
    assert png.shape[0] == 2 * facts[0], (png.shape, facts)  # the whole figure, at scale 2
    footer = png[-2 * (facts[1] + facts[3]):]  # under the x axis's own margin: the facts' lines
    assert (footer.min(-1) < 160).any(), "no facts under the chart"


def hidden_count(page) -> int:
    return int(page.get_by_text("patches hidden (magenta)").inner_text().split("Mask: ")[1].split(" of")[0])


def test_every_page_renders_and_reacts(server, browser, no_leftover_runs):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    for name, path in PAGES.items():
        page.goto(f"{server}/{path}")
        page.wait_for_selector("h1", timeout=120_000)
        settle(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Learn" in nav and "Home" not in nav, nav
        assert page.get_by_text("Deploy", exact=True).count() == 0
        if name == "learn":
            check_the_idea_and_the_downloads(page)
        if name == "reconstruct":
            caption = hidden_count(page)
            slider = page.locator('[data-testid="stSlider"]').filter(has_text="Mask ratio").locator('[tabindex="0"]')
            slider.focus()
            slider.press("ArrowRight")
            settle(page)
            assert hidden_count(page) != caption
            page.get_by_text("hand-edited", exact=True).click()
            settle(page)
            assert page.get_by_role("button", name="Start again from the random mask").count() == 1
            counts = [hidden_count(page)]
            for _ in range(2):  # the same patch twice: hidden, then shown again
                grid = page.locator(".js-plotly-plot").first
                box = grid.bounding_box()
                page.mouse.click(box["x"] + box["width"] * 0.07, box["y"] + box["height"] * 0.07)
                deadline = time.time() + 60  # the rerun may start a while after the click
                while time.time() < deadline and hidden_count(page) == counts[-1]:
                    page.wait_for_timeout(250)
                settle(page)
                counts.append(hidden_count(page))
            assert counts[1] != counts[0] and counts[2] == counts[0], counts
            check_figures(page, name)
            screenshot(page, ARTIFACTS / f"{name}.png")
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text("random", exact=True).click()
            settle(page)
            for method in ("ConMIM", "BootMAE"):  # feature predictors: the feature-match maps, ConMIM with no image
                sidebar.get_by_text(method, exact=True).click()
                # the address follows the pick once its run has begun: settle() alone may see the last run's end
                page.wait_for_url(lambda url, m=method.lower(): f"method={m}&" in url, timeout=60_000)
                settle(page)
                page.get_by_text("feature match per masked patch").first.wait_for(timeout=60_000)
                assert page.get_by_text("predicts features, not pixels").count() == (method == "ConMIM")
                check_figures(page, f"{name} ({method})")
                screenshot(page, ARTIFACTS / f"{name}-{method.lower()}.png")
            sidebar.get_by_text("SimMIM", exact=True).click()
            settle(page)
            page.get_by_text("upload", exact=True).click()
            settle(page)
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                files=[{"name": "ramp-16-bit.png", "mimeType": "image/png", "buffer": sixteen_bit_png()}])
            settle(page)
            page.get_by_text("16-bit pixels").wait_for(timeout=60_000)
            assert page.get_by_text("what the model sees: 28 x 28").count() == 1
            check_figures(page, "reconstruct (upload)")
            screenshot(page, ARTIFACTS / "reconstruct-upload.png")
            # a file over the app's 10 MB: a message on the page, naming it, and the previous result gone
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                files=[{"name": "too-big.png", "mimeType": "image/png", "buffer": b"\x89PNG" + bytes(12 * 2**20)}])
            settle(page)
            page.get_by_text("cannot be used: the upload is 12.0 MiB").first.wait_for(timeout=60_000)
            assert page.get_by_text("too-big.png").count() >= 1 and page.get_by_text("the limit is 10 MiB").count() >= 1
            assert page.get_by_text("what the model sees: 28 x 28").count() == 0
            assert page.get_by_text("reconstruction (visible patches pasted back)").count() == 0
            name = "reconstruct-rejected-upload"
        if name == "tokens":  # click a token: its patch appears framed inside its image
            chart = page.locator(".js-plotly-plot").first
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            x, y = chart.evaluate("""gd => { const l = gd._fullLayout, t = gd._fullData[0];
                return [l.xaxis._offset + l.xaxis.d2p(t.x[0]), l.yaxis._offset + l.yaxis.d2p(t.y[0])]; }""")
            page.mouse.click(box["x"] + x, box["y"] + y)
            settle(page)
            page.get_by_text("(framed;").first.wait_for(timeout=60_000)
            page.get_by_text("class", exact=True).click()  # another colouring: the token stays picked
            settle(page)
            assert page.get_by_text("(framed;").count() == 1
        if name == "attention":
            before = page.get_by_text("Query: patch").inner_text()
            grid = page.locator(".js-plotly-plot").first
            box = grid.bounding_box()
            page.mouse.click(box["x"] + box["width"] * 0.93, box["y"] + box["height"] * 0.93)  # bottom-right patch
            settle(page)
            assert page.get_by_text("Query: patch").inner_text() != before
        if name == "train":  # a short run: Start disabled while it goes, then live charts and a k-NN point
            page.get_by_text("Use the small shipped data subset").click()
            steps = page.get_by_label("Steps")
            steps.fill("20")
            steps.press("Tab")  # Enter would submit the form
            page.get_by_role("button", name="Start training").click()
            page.get_by_role("button", name="Stop").wait_for(timeout=60_000)
            page.wait_for_timeout(300)
            assert page.get_by_role("button", name="Start training").is_disabled()
            page.get_by_text("The masked tokens, as they emerge").wait_for(timeout=120_000)
            live = emergence_charts(page, steps_at_least=2)  # live: drawn while the runs go
            if not page.get_by_text("Saved:").count():
                screenshot(page, ARTIFACTS / "train-live.png")
            page.get_by_text("Saved:").first.wait_for(timeout=300_000)
            settle(page)
            assert "k-NN" in page.get_by_text("Saved:").first.inner_text()
            assert page.get_by_role("button", name="Start training").is_enabled()
            after = emergence_charts(page, steps_at_least=5)  # steps 0, 5, ..., 20
            assert after["frames"] == 5 and live["measure_traces"] > 0
            replay = page.locator(CHARTS).nth(after["scatter"])
            replay.scroll_into_view_if_needed()
            first = replay.evaluate("gd => gd._fullData.map(t => Array.from(t.x).slice(0, 3))")  # the replay opens at step 0
            replay.screenshot(path=str(ARTIFACTS / "train-replay-step-0.png"))
            rail = replay.locator(".slider-rail-touch-rect").bounding_box()
            page.mouse.click(rail["x"] + rail["width"] - 2, rail["y"] + rail["height"] / 2)  # the slider's last step
            page.wait_for_timeout(1000)
            last = replay.evaluate("gd => gd._fullData.map(t => Array.from(t.x).slice(0, 3))")
            assert first != last, "the replay's frames are all alike"
            replay.screenshot(path=str(ARTIFACTS / "train-replay-step-20.png"))
            check_the_runs_sentence_and_their_curves(page)
            continue
        check_figures(page, name)
        screenshot(page, ARTIFACTS / f"{name}.png")
    page.close()


def check_the_runs_sentence_and_their_curves(page) -> None:
    """(11) The sentence on the two runs is the one their own logged traces give (a run called
    ahead only beyond noise); (6) on Curves the two runs are chosen, scored with no efficiency
    from one seed and one point, and the page draws without an error."""
    import json
    import re

    from logic.emergence import alike_sentence

    check_figures(page, "train")
    screenshot(page, ARTIFACTS / "train.png")
    saved = re.findall(r"runs/app-[\w.-]+", page.get_by_text("Saved:").first.inner_text())
    assert len(saved) == 2, saved
    rows = {("MTO" if d.endswith("-mto") else "baseline"): [json.loads(line) for line in
                                                          (ROOT / d / "metrics.jsonl").read_text().splitlines()]
            for d in saved}
    expected = alike_sentence({k: rows[k] for k in ("baseline", "MTO")}, 1)
    assert expected and page.get_by_text(expected).count() == 1, expected
    _nav(page, "Curves")
    tags = page.locator('[data-testid="stMultiSelect"]').first.inner_text()
    times = [d.split("-")[2] for d in saved]  # runs/app-<date>-<HHMMSS>-<variant>: shown as app HH:MM:SS
    assert all(f"app {t[:2]}:{t[2:4]}:{t[4:6]}" in tags for t in times), (tags, saved)
    assert page.get_by_text("2 or more seeds").count() >= 1  # what an efficiency needs, said
    assert page.get_by_text("ArrowInvalid").count() == 0
    check_figures(page, "curves (with the Train page's runs)")
    screenshot(page, ARTIFACTS / "curves-with-train-runs.png")


def emergence_charts(page, steps_at_least: int) -> dict:
    """The emergence charts as drawn: the measures (both runs' panels with a line holding at least
    ``steps_at_least`` trace points) and the token scatter (both runs' masked and visible tokens),
    each at least 300 px tall and wide. Their indices among the page's charts, the replay's frames."""
    page.wait_for_function("""([n, selector]) => {  // scrolled to the end: a chart below the window may not be drawn yet
        const main = document.querySelector('[data-testid="stMain"]');
        if (main) main.scrollTo(0, main.scrollHeight);
        const charts = Array.from(document.querySelectorAll(selector));
        return charts.some(gd => (gd._fullData || []).filter(t => t.xaxis === 'x2' && t.x && t.x.length >= n).length
                && (gd.layout.annotations || []).some(a => a.text.includes('singularity score S')))
            && charts.some(gd => (gd._fullData || []).some(t => t.name === 'masked' && t.x && t.x.length)); }""",
                           arg=[steps_at_least, CHARTS], timeout=120_000)
    # one look at every chart at once: while the runs go, the page redraws them every 2.5 s
    charts = page.evaluate("""selector => Array.from(document.querySelectorAll(selector)).map(gd => {
        const box = gd.getBoundingClientRect();
        return {titles: (gd.layout.annotations || []).map(a => a.text),
                axes: (gd._fullData || []).filter(t => t.x && t.x.length).map(t => t.xaxis),
                names: (gd._fullData || []).map(t => t.name), points: (gd._fullData || []).map(t => t.x ? t.x.length : 0),
                frames: (gd._transitionData && gd._transitionData._frames || []).length,
                width: box.width, height: box.height}; })""", CHARTS)
    found = {}
    for i, info in enumerate(charts):
        if any("singularity score S" in t for t in info["titles"]):
            assert {"x", "x2"} <= set(info["axes"]), info["axes"]  # the baseline's and MTO's panels
            found["measures"], found["measure_traces"] = i, len(info["axes"])
        elif "masked" in info["names"] and "visible" in info["names"]:
            assert set(info["axes"]) == {"x", "x2"} and min(info["points"]) > 0, info
            found["scatter"], found["frames"] = i, info["frames"]
        else:
            continue
        assert info["width"] >= 300 and info["height"] >= 300, info
    assert {"measures", "scatter"} <= set(found), found
    return found


def test_a_training_belongs_to_the_browser_that_started_it(server, browser, no_leftover_runs):
    """Two browsers on one server: the one that starts a training can stop it; the other watches it
    (no Stop; its button queues a training instead of starting one) and gets Start back when it ends."""
    ARTIFACTS.mkdir(exist_ok=True)
    owner, other = (browser.new_context(viewport={"width": 1400, "height": 1000}).new_page() for _ in range(2))
    owner.goto(f"{server}/Train")
    settle(owner)
    owner.get_by_text("Use the small shipped data subset").click()
    steps = owner.get_by_label("Steps")
    steps.fill("5000")
    steps.press("Tab")
    owner.get_by_role("button", name="Start training").click()
    owner.get_by_role("button", name="Stop").wait_for(timeout=60_000)
    other.goto(f"{server}/Train")
    other.get_by_text("started by another visitor").wait_for(timeout=120_000)
    settle(other)  # the run that drew the text has ended: no element of an earlier run is left
    assert other.get_by_text("started by another visitor").count() == 1
    assert other.get_by_role("button", name="Stop").count() == 0
    assert other.get_by_role("button", name="Queue my training").count() == 1
    screenshot(other, ARTIFACTS / "train-watched-from-another-browser.png")
    owner.get_by_role("button", name="Stop").click()
    owner.get_by_text("Saved:").first.wait_for(timeout=300_000)
    other.get_by_text("Saved:").first.wait_for(timeout=300_000)
    deadline = time.time() + 60
    while time.time() < deadline and not (other.get_by_role("button", name="Start training").count()
                                          and other.get_by_role("button", name="Start training").is_enabled()):
        other.wait_for_timeout(500)
    assert other.get_by_role("button", name="Start training").is_enabled()
    assert other.get_by_text("started by another visitor").count() == 0
    for page in (owner, other):
        page.context.close()


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the sidebar's selectbox ``label``, typing to filter the list."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.keyboard.type(option.split(" · ")[0])
    page.get_by_role("option", name=option).first.click()
    settle(page, 300_000)


def test_every_page_on_a_vit_b_shaped_checkpoint_alone_on_photos(server, browser):
    """A ViT-B-shaped MAE (randomly initialised, in mto's format) picked alone: every page draws it on
    the photos, 196 patches; the screenshots are test-artifacts/vit-b-*.png."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from app_budgets import random_checkpoint

    folder = ROOT / "runs" / "zz-e2e-vit-b-mae"
    random_checkpoint(folder, "mae", "vit-b")
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/Reconstruct")
        settle(page)
        page.locator('[data-testid="stSidebar"]').get_by_text("MAE", exact=True).click()
        settle(page)
        _pick(page, "Checkpoint", f"{folder.name} · MAE (baseline)")
        _pick(page, "Compare with", "— none: this checkpoint alone —")
        for place, name in enumerate(("learn", "reconstruct", "tokens", "attention")):
            page.locator('[data-testid="stSidebarNav"] a').nth(place).click()  # the same session: the same choice
            page.wait_for_timeout(300)
            settle(page, 300_000)
            assert page.get_by_text("photos that ship with scikit-image").count() >= 1, name
            assert page.get_by_text("zz-e2e-vit-b-mae · MAE (baseline)").count() >= 1, name
            if name == "reconstruct":
                assert page.get_by_text("of 196 patches hidden").count() == 1
            if name == "attention":
                assert page.get_by_text("Tokens: [CLS] and 196 patches (197 in all)").count() == 1
                grid = page.locator(".js-plotly-plot").first
                box = grid.bounding_box()
                before = page.get_by_text("Query: patch").inner_text()
                page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
                settle(page, 300_000)
                assert page.get_by_text("Query: patch").inner_text() != before
            check_figures(page, f"{name} (ViT-B)")
            screenshot(page, ARTIFACTS / f"vit-b-{name}.png")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _visitor_page(browser, address: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(address)
    settle(page)
    return page


def _stop(page):
    return page.locator('[data-testid="stMain"]').get_by_role("button", name="Stop", exact=True)


def test_a_classroom_training_survives_a_reload_ignores_enter_queues_and_yields_to_the_teacher(
        server, browser, no_leftover_runs):
    """Visitor A starts a run; Enter in Steps had started nothing; a reload at A's address keeps
    Stop; visitor B's start queues with its place; the teacher's address stops A's run, and B's starts."""
    ARTIFACTS.mkdir(exist_ok=True)
    a = _visitor_page(browser, f"{server}/Train?visitor=aaaa1111")
    a.get_by_text("Use the small shipped data subset").click()
    steps = a.get_by_label("Steps")
    steps.fill("5000")
    steps.press("Enter")  # a form would submit here: nothing may start
    a.wait_for_timeout(3000)
    settle(a)
    assert _stop(a).count() == 0 and a.get_by_text("Training now:").count() == 0
    a.get_by_role("button", name="Start training").click()
    _stop(a).wait_for(timeout=60_000)
    a.reload()
    settle(a)
    _stop(a).wait_for(timeout=60_000)
    assert "visitor=aaaa1111" in a.url
    screenshot(a, ARTIFACTS / "train-owner-after-reload.png")
    b = _visitor_page(browser, f"{server}/Train")
    b.get_by_text("started by another visitor").wait_for(timeout=60_000)
    assert _stop(b).count() == 0
    b.get_by_text("Use the small shipped data subset").click()
    b.get_by_label("Steps").fill("5000")
    b.get_by_label("Steps").press("Tab")
    b.get_by_role("button", name="Queue my training").click()
    b.get_by_text("Your training is queued: place 1 of 1").wait_for(timeout=60_000)
    screenshot(b, ARTIFACTS / "train-second-visitor-queued.png")
    t = _visitor_page(browser, f"{server}/Train?teacher={TEACHER}")
    t.get_by_text("Teacher: you can stop any training").wait_for(timeout=60_000)
    _stop(t).click()
    # the queued run starts by itself: B's page shows its Stop
    _stop(b).wait_for(timeout=180_000)
    assert b.get_by_text("Your training is queued").count() == 0
    screenshot(b, ARTIFACTS / "train-second-visitor-running.png")
    _stop(b).click()
    b.get_by_text("Saved:").first.wait_for(timeout=300_000)
    settle(b)
    for page in (a, b, t):
        page.context.close()


def test_learn_answers_at_its_own_address_too(server, browser):
    """/Learn opens Learn (it lives at the root), with no "Page not found" dialog; the page list is
    Home.py's even when a page other than the root is the first a fresh server serves."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Learn")
    page.wait_for_selector("h1", timeout=120_000)
    settle(page, 300_000)
    assert page.get_by_text("Page not found").count() == 0
    assert page.get_by_text("Masked Token Optimization, explained").count() >= 1
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Learn" in nav and "Home" not in nav and nav.count("Learn") == 1, nav
    check_figures(page, "learn at /Learn")
    screenshot(page, ARTIFACTS / "learn-at-its-own-address.png")
    page.close()


def modebar_overlaps(page) -> list[str]:
    """Every chart's Plotly toolbar against its titles, subplot titles, legend and axis titles: the
    texts it would cover on hover (none expected)."""
    return page.evaluate("""selector => {
        const hits = [];
        for (const gd of document.querySelectorAll(selector)) {
            const bar = gd.querySelector('.modebar');
            if (!bar) continue;
            const r = bar.getBoundingClientRect();
            if (!r.width) continue;
            for (const t of gd.querySelectorAll('.gtitle, .annotation-text, .legendtext, .cbtitle text, .g-xtitle text, .g-ytitle text')) {
                const q = t.getBoundingClientRect();
                if (q.width && r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom)
                    hits.push(t.textContent);
            }
        }
        return hits; }""", CHARTS)


def _mask_type(page) -> str:
    """The mask type checked in the sidebar."""
    return page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').filter(has_text="Mask type").locator(
        "label:has(input:checked)").inner_text().strip()


def _nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.wait_for_timeout(300)
    settle(page, 300_000)


def test_fair_comparisons_and_figures_that_follow_the_model(server, browser):
    """What a student and a researcher saw, in a browser: Compare with follows a 224 px checkpoint to
    its twin; a norm_pix_loss model and a plain one get no winner; the block mask holds on Tokens and
    Attention; per-layer charts keep their ranges; the toolbar covers no title; the replay reaches
    the checkpoint's step; Learn's pipeline follows the model and a zero mask token is explained;
    Curves gives no one-seed efficiency. Screenshots: test-artifacts/v5-*.png."""
    from ..conftest import make_rgb_checkpoint

    ARTIFACTS.mkdir(exist_ok=True)
    made = [make_rgb_checkpoint(ROOT / "runs" / f"zz-v5-{name}", *spec) for name, spec in (
        ("mae", ("mae",)), ("mae-mto", ("mae-mto",)), ("normpix", ("mae", 64, 2, "vit-b", "model.norm_pix_loss=true")))]
    zero, twin = ROOT / "runs" / "zz-v5-zero-token", ROOT / "runs" / "zz-v5-mae-copy"
    shutil.copytree(ROOT / "checkpoints" / "mae", zero, dirs_exist_ok=True)
    shutil.copytree(ROOT / "checkpoints" / "mae", twin, dirs_exist_ok=True)  # a second baseline, equal to it
    from safetensors.torch import load_file, save_file
    import torch

    weights = load_file(zero / "model.safetensors")
    weights["mask_token"] = torch.zeros_like(weights["mask_token"])
    save_file(weights, zero / "model.safetensors", metadata={"format": "pt"})
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        page.goto(f"{server}/Reconstruct")
        settle(page, 300_000)
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("MAE", exact=True).click()
        settle(page, 300_000)
        # (3) a 224 px checkpoint: Compare with moves to its MTO twin, never to a refusal
        _pick(page, "Checkpoint", "zz-v5-mae · MAE (baseline)")
        chosen = sidebar.locator('[data-testid="stCaptionContainer"]').all_inner_texts()  # the pair's paths
        assert any("runs/zz-v5-mae-mto" in c for c in chosen), chosen
        assert page.get_by_text("cannot be compared").count() == 0
        screenshot(page, ARTIFACTS / "v5-compare-with-follows-the-checkpoint.png")
        # (2) norm_pix_loss beside a plain model: no winner, and why
        _pick(page, "Checkpoint", "zz-v5-normpix · MAE (baseline)")
        _pick(page, "Compare with", "zz-v5-mae · MAE (baseline)")
        page.get_by_text("no winner is named").first.wait_for(timeout=120_000)
        assert page.get_by_text("(better)").count() == 0
        check_figures(page, "reconstruct (norm-pix pair)")
        screenshot(page, ARTIFACTS / "v5-reconstruct-norm-pix-no-winner.png")
        # (12) the block mask, chosen here, holds on Tokens and Attention; (10) fixed ranges; toolbar clear
        _pick(page, "Checkpoint", "mae · MAE (baseline)")
        _pick(page, "Compare with", "— none: this checkpoint alone —")
        sidebar.get_by_text("block", exact=True).click()
        settle(page, 300_000)
        assert modebar_overlaps(page) == []
        _nav(page, "Tokens")
        assert _mask_type(page) == "block"
        assert modebar_overlaps(page) == []
        page.get_by_text("Replay this run's training").click()  # (9) to the checkpoint's step
        settle(page, 300_000)
        page.wait_for_function("""s => Array.from(document.querySelectorAll(s)).some(gd =>
            (gd._transitionData && gd._transitionData._frames || []).length > 0)""", arg=CHARTS, timeout=120_000)
        frames = page.evaluate("""s => Array.from(document.querySelectorAll(s)).map(gd =>
            (gd._transitionData && gd._transitionData._frames || []).map(f => f.name)).filter(n => n.length)[0]""",
                               CHARTS)
        assert frames == [str(step) for step in range(0, 601, 75)] + ["624"], frames  # all 9 snapshots, then the checkpoint
        check_figures(page, "tokens (block, replay)")
        screenshot(page, ARTIFACTS / "v5-tokens-block-mask-and-replay.png")
        _nav(page, "Attention")
        assert _mask_type(page) == "block"
        ranges = page.evaluate("""s => Object.fromEntries(Array.from(document.querySelectorAll(s)).map(gd =>
            [((gd.layout.yaxis || {}).title || {}).text, (gd._fullLayout.yaxis || {}).range]))""", CHARTS)
        low, high = ranges["heterogeneity HI"]
        assert low <= 0 and 1 <= high < 1.1, ranges
        assert modebar_overlaps(page) == []
        check_figures(page, "attention (block, alone)")
        screenshot(page, ARTIFACTS / "v5-attention-block-mask-fixed-ranges.png")
        # (5) Learn follows the model; (7) a zero mask token is said to be zero
        _pick(page, "Checkpoint", "zz-v5-mae · MAE (baseline)")
        _nav(page, "Learn")
        assert page.get_by_text("For the checkpoint chosen: 224 x 224 input, 196 patches of 16 x 16 px").count() == 1
        assert modebar_overlaps(page) == []
        screenshot(page, ARTIFACTS / "v5-learn-vit-b-pipeline.png")
        _pick(page, "Checkpoint", "zz-v5-zero-token · MAE (baseline)")
        page.get_by_text("the mask token is all zeros, so its framed rows are blank").wait_for(timeout=120_000)
        assert page.get_by_text("its cosine to every patch is 0 by convention").count() == 1
        check_figures(page, "learn (zero token)")
        screenshot(page, ARTIFACTS / "v5-learn-zero-mask-token.png")
        # (4) two baselines, equal to the last digit: neither called MTO, no winner
        _pick(page, "Checkpoint", "mae · MAE (baseline)")
        _pick(page, "Compare with", "zz-v5-mae-copy · MAE (baseline)")
        page.get_by_text("Neither token is the more distinct: the two measures are equal").wait_for(timeout=120_000)
        assert page.get_by_text("this compares two baselines").count() >= 1
        assert page.get_by_text("MTO's mean cosine").count() == 0 and page.get_by_text("MTO's largest").count() == 0
        screenshot(page, ARTIFACTS / "v5-learn-two-baselines-no-winner.png")
        # (6) Curves: no one-seed efficiency, no error
        _nav(page, "Curves")
        assert page.get_by_text("2 or more seeds").count() >= 1
        assert modebar_overlaps(page) == []
        check_figures(page, "curves")
        screenshot(page, ARTIFACTS / "v5-curves-no-one-seed-efficiency.png")
    finally:
        page.context.close()
        for folder in (*made, zero, twin):
            shutil.rmtree(folder, ignore_errors=True)


def test_a_shared_address_shows_the_same_view_in_a_fresh_browser(server, browser):
    """Choices made on Reconstruct (MAE alone, block mask, ratio and seed changed) travel in the
    address the sidebar offers; a fresh browser context opening it sees the same view."""
    ARTIFACTS.mkdir(exist_ok=True)
    teacher = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    teacher.goto(f"{server}/Reconstruct")
    settle(teacher, 300_000)
    sidebar = teacher.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("MAE", exact=True).click()
    settle(teacher, 300_000)
    _pick(teacher, "Compare with", "— none: this checkpoint alone —")
    sidebar.get_by_text("block", exact=True).click()
    settle(teacher, 300_000)
    slider = teacher.locator('[data-testid="stSlider"]').filter(has_text="Mask ratio").locator('[tabindex="0"]')
    slider.focus()
    slider.press("ArrowRight")
    settle(teacher, 300_000)
    seed = teacher.get_by_label("Mask seed")
    seed.fill("5")
    seed.press("Enter")
    settle(teacher, 300_000)
    sidebar.get_by_text("Share this view").click()
    link = sidebar.locator('[data-testid="stCode"]').inner_text().strip()
    assert link.startswith("/Reconstruct?method=mae") and "visitor" not in link and "mask=block" in link, link
    caption = teacher.get_by_text("patches hidden (magenta)").inner_text()
    screenshot(teacher, ARTIFACTS / "link-made.png")
    student = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    student.goto(f"{server}{link}")
    settle(student, 300_000)
    assert student.get_by_text("patches hidden (magenta)").inner_text() == caption  # same ratio, seed and type
    assert _mask_type(student) == "block"
    assert student.get_by_text("mae · MAE (baseline)").count() >= 1 and student.get_by_text("mae-mto").count() == 0
    assert "visitor=" in student.url and teacher.url.split("visitor=")[1][:12] not in student.url
    screenshot(student, ARTIFACTS / "link-opened-in-a-fresh-browser.png")
    for page in (teacher, student):
        page.context.close()


def test_every_page_on_the_rgb_checkpoints_in_a_pair_and_alone_and_an_rgb_training(server, browser,
                                                                                   no_leftover_runs):
    """The shipped colour MAE beside its MTO twin, then alone, on every page: photos drawn large, the
    held-out ones marked as never seen, the floors beside the reconstruction; then the Train page's
    colour preset for a few steps. Screenshots: test-artifacts/rgb-*.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        # a shared address: the colour MAE beside its MTO twin
        page.goto(f"{server}/?method=mae&ckpt=checkpoints/mae-rgb&with=checkpoints/mae-rgb-mto")
        settle(page, 300_000)
        for shown in ("pair", "alone"):
            for title in ("Learn", "Reconstruct", "Tokens", "Attention"):
                _nav(page, title)
                assert page.get_by_text("mae-rgb · MAE (baseline)").count() >= 1, title
                assert (page.get_by_text("mae-rgb-mto · MAE + MTO").count() >= 1) == (shown == "pair")
                assert page.get_by_text("never seen in training").count() >= 1, title
                if title == "Reconstruct":
                    assert page.get_by_text("mean colour fill · MSE").count() == 1
                    assert page.get_by_text("biharmonic fill · MSE").count() == 1
                    assert page.get_by_text("x mean colour").count() == (2 if shown == "pair" else 1)
                    widths = page.locator('[data-testid="stImage"] img').evaluate_all(
                        "imgs => imgs.map(i => i.getBoundingClientRect().width)")
                    assert widths and min(widths) >= 256, widths  # each 4 px patch drawn 32 px wide
                check_figures(page, f"{title} ({shown})")
                screenshot(page, ARTIFACTS / f"rgb-{shown}-{title.lower()}.png")
            if shown == "pair":
                _pick(page, "Compare with", "— none: this checkpoint alone —")
        _nav(page, "Curves")
        assert page.get_by_text("mae-rgb-mto · MAE + MTO").count() >= 1
        check_figures(page, "Curves")
        screenshot(page, ARTIFACTS / "rgb-curves.png")
        _nav(page, "Train")
        page.get_by_text("tiny-rgb: photo crops, 32 x 32 colour").click()
        page.get_by_text("MAE", exact=True).first.click()
        steps = page.get_by_label("Steps")
        steps.fill("10")
        steps.press("Tab")
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Saved:").first.wait_for(timeout=180_000)
        settle(page)
        page.get_by_text("No k-NN point for these runs").wait_for(timeout=60_000)
        assert page.get_by_text("a crop of").count() == 4
        assert page.get_by_text("· never seen in training").count() == 4
        check_figures(page, "Train (tiny-rgb)")
        screenshot(page, ARTIFACTS / "rgb-train.png")
    finally:
        page.context.close()
