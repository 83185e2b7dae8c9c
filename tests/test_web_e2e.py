"""The web app in a real browser: Debian's headless Chromium driven by Playwright, real clicks.

A server is started by the test on a workspace with tiny models trained in the test (two word LMs
on the same text, LSTM and GRU, and a sentiment classifier), with that text as own data so the UI
can train on it. Every test fails on any console error.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from web_support import (browser_marks, checked_page, live_server, make_workspace, own_data,
                         wait_drawn)

pytestmark = browser_marks()

VIEWS = ["summary", "main", "sentence", "detail", "radar", "projection", "discovery", "pattern", "compare"]
TIMEOUT = 60_000  # ms; first requests compute analyses on two slow cores


def _post(url: str) -> dict:
    req = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _wait_job(url: str, job: dict, what: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while job["status"] in ("queued", "running"):
        assert time.time() < deadline, f"{what} did not finish"
        time.sleep(0.2)
        job = _get(f"{url}/api/jobs/{job['id']}")
    assert job["status"] == "done", job
    return job


def _prepare(url: str, ref: str, endpoints=("training", "errors")) -> None:
    """Record `ref` and compute its slow analyses first (as the fixture does for the tiny models), so
    the browser gets no 409 (a console error) and the test times the view, not the analyses."""
    _wait_job(url, _post(f"{url}/api/models/{ref}/record"), f"recording of {ref}")
    for ep in endpoints:
        for _ in range(5):
            try:
                _get(f"{url}/api/models/{ref}/{ep}")
                break
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise
                _wait_job(url, json.loads(e.read())["job"], f"{ep} of {ref}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = make_workspace(tmp_path_factory.mktemp("web") / "home")
    with live_server(home, data=own_data(home)) as url:
        # Record the view recordings first, so the tests time the views, not the recordings.
        for ref in ("tiny-lstm", "tiny-gru", "tiny-sentiment"):
            _wait_job(url, _post(f"{url}/api/models/{ref}/record"), f"recording of {ref}")
        yield url


@pytest.fixture
def page(browser):
    with checked_page(browser, TIMEOUT) as pg:
        yield pg


_drawn = wait_drawn


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_loads_and_draws(site, page, view):
    extra = "&model_b=tiny-gru&compare=1" if view == "compare" else ""
    page.goto(f"{site}/?view={view}&model=tiny-lstm&text=the%20cat%20sat%20on%20the%20mat%20.{extra}")
    root = f"[data-test=view-{view}]"
    page.wait_for_selector(root)
    _drawn(page, root)


def test_classifier_summary_shows_confusion_matrix(site, page):
    page.goto(f"{site}/?view=summary&model=tiny-sentiment")
    _drawn(page, "[data-test=view-summary]")
    page.wait_for_selector("[data-test=view-summary] [data-test=confusion-cell]")


def _unit_fills(pg) -> list[str]:
    return pg.eval_on_selector_all("[data-test=view-main] [data-test=unit-cell]",
                                   "els => els.map(e => e.getAttribute('fill') || getComputedStyle(e).fill)")


def test_clicking_a_word_recolours_the_units(site, page):
    page.goto(f"{site}/?view=main&model=tiny-lstm")
    page.wait_for_selector("[data-test=view-main] [data-test=unit-cell]")
    page.wait_for_selector("[data-test=view-main] [data-test=cloud-word]")
    before = _unit_fills(page)
    word = page.locator("[data-test=view-main] [data-test=cloud-word]").first
    chosen = word.get_attribute("data-word")
    word.click()
    page.wait_for_function(
        "before => { const f = [...document.querySelectorAll('[data-test=view-main] [data-test=unit-cell]')]"
        ".map(e => e.getAttribute('fill') || getComputedStyle(e).fill); return f.join() !== before.join() }",
        arg=before)
    after = _unit_fills(page)
    assert len(set(after)) > 1, "every unit got the same colour"
    assert f"word={chosen}" in page.url or f"word={urllib.parse.quote(chosen)}" in page.url


def test_shared_url_reloads_the_same_view(site, browser, page):
    page.goto(f"{site}/?view=main&model=tiny-lstm")
    page.wait_for_selector("[data-test=view-main] [data-test=cloud-word]")
    page.locator("[data-test=view-main] [data-test=cloud-word]").nth(1).click()
    page.wait_for_function("() => location.search.includes('word=')")
    time.sleep(0.5)
    shared, fills = page.url, _unit_fills(page)
    other = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    other.set_default_timeout(TIMEOUT)
    other.goto(shared)
    other.wait_for_selector("[data-test=view-main] [data-test=unit-cell]")
    other.wait_for_function(
        "fills => { const f = [...document.querySelectorAll('[data-test=view-main] [data-test=unit-cell]')]"
        ".map(e => e.getAttribute('fill') || getComputedStyle(e).fill); return f.join() === fills.join() }",
        arg=fills)
    assert other.url == shared
    other.context.close()


def test_typing_a_sentence_gives_its_heatmap(site, page):
    page.goto(f"{site}/?view=detail&model=tiny-lstm")
    page.fill("[data-test=sentence-input]", "the king read a book")
    page.click("[data-test=sentence-run]")
    page.wait_for_selector("[data-test=view-detail] [data-test=heatmap]")
    page.wait_for_function("() => document.querySelectorAll('[data-test=view-detail] [data-test=token]').length >= 5")
    tokens = page.locator("[data-test=view-detail] [data-test=token]").all_inner_texts()
    assert [t.strip() for t in tokens[:5]] == ["the", "king", "read", "a", "book"]
    assert "text=the" in page.url


def test_compare_mode_shows_two_models(site, page):
    page.goto(f"{site}/?view=main&model=tiny-lstm")
    page.wait_for_selector("[data-test=view-main] [data-test=unit-cell]")
    page.check("[data-test=compare-toggle]")
    page.select_option("[data-test=model-b-select]", "tiny-gru")
    page.wait_for_selector("[data-test=side-a] [data-test=unit-cell]")
    page.wait_for_selector("[data-test=side-b] [data-test=unit-cell]")
    assert "compare=1" in page.url and "model_b=tiny-gru" in page.url


# ---------------------------------------------------------------- jobs and training from the UI
def _open_jobs(pg):
    if not pg.locator("[data-test=jobs-panel]").count():
        pg.click("[data-test=jobs-button]")
    pg.wait_for_selector("[data-test=jobs-panel]")


def test_jobs_panel_lists_the_view_recordings_as_done(site, page):
    page.goto(f"{site}/?view=sentence&model=tiny-lstm")
    page.wait_for_selector("[data-test=view-sentence]")
    _open_jobs(page)
    rows = "[data-test=jobs-panel] [data-test=job-row][data-kind=record]"
    page.wait_for_function(f"() => document.querySelectorAll('{rows}[data-status=done]').length >= 3")
    done = page.locator(f"{rows}[data-status=done]").all_inner_texts()
    for ref in ("tiny-lstm", "tiny-gru", "tiny-sentiment"):
        assert any(ref in t for t in done), (ref, done)
    # finished jobs have nothing to cancel
    assert page.locator(f"{rows}[data-status=done] [data-test=job-cancel]").count() == 0


def _train_form(pg, name: str, hidden: int, epochs: int, batch: int, patience: str):
    pg.click("[data-test=train-button]")
    pg.wait_for_selector("[data-test=train-form]")
    # own data of the models here: the lines the tiny LMs were trained on
    pg.wait_for_function("() => [...document.querySelectorAll('[data-test=train-dataset] option')]"
                         ".some(o => o.value === 'lines' && !o.disabled)")
    pg.select_option("[data-test=train-dataset]", "lines")
    pg.select_option("[data-test=train-cell]", "gru")
    pg.fill("[data-test=train-hidden]", str(hidden))
    pg.fill("[data-test=train-emb]", str(hidden))
    pg.fill("[data-test=train-epochs]", str(epochs))
    pg.fill("[data-test=train-batch]", str(batch))
    pg.fill("[data-test=train-patience]", patience)
    pg.fill("[data-test=train-name]", name)
    pg.click("[data-test=train-submit]")
    pg.wait_for_selector("[data-test=jobs-panel]")
    assert pg.locator("[data-test=train-form]").count() == 0, pg.locator("[data-test=train-error]").all_inner_texts()
    return f"[data-test=jobs-panel] [data-test=job-row][data-kind=train]:has-text('{name}')"


def test_train_a_model_from_the_ui_and_open_it(site, page):
    page.goto(f"{site}/?view=sentence&model=tiny-lstm")
    page.wait_for_selector("[data-test=view-sentence]")
    # a bad name is refused in the form, before anything is sent
    page.click("[data-test=train-button]")
    page.fill("[data-test=train-name]", "tiny-lstm")
    page.wait_for_selector("[data-test=train-name-error]")
    page.click("[data-test=train-close]")
    row = _train_form(page, "ui-gru", hidden=8, epochs=2, batch=8, patience="")
    page.wait_for_selector(row)
    assert page.locator(f"{row} [data-test=job-progress]").count() == 1
    page.wait_for_selector(f"{row}[data-status=done]", timeout=120_000)
    assert page.locator(f"{row} [data-test=job-progress]").get_attribute("data-progress") == "100"
    _prepare(site, "ui-gru")
    page.click(f"{row} [data-test=job-open]")
    page.wait_for_function("() => location.search.includes('model=ui-gru') && location.search.includes('view=summary')")
    assert page.locator("[data-test=model-select] option[value=ui-gru]").count() == 1
    root = "[data-test=view-summary]"
    page.wait_for_selector(f"{root} [data-test=training-curve]", timeout=120_000)
    # two epochs, two checkpoints: the checkpoint dynamics are drawn
    page.wait_for_selector(f"{root} [data-test=dynamics] [data-test=line-chart]", timeout=120_000)
    assert page.locator(f"{root} [data-test=dynamics] [data-test=line-chart] path").count() >= 2
    _drawn(page, root)


def test_cancel_a_training_from_the_jobs_panel(site, page):
    page.goto(f"{site}/?view=sentence&model=tiny-lstm")
    page.wait_for_selector("[data-test=view-sentence]")
    row = _train_form(page, "ui-long", hidden=16, epochs=100, batch=2, patience="")
    page.wait_for_selector(f"{row}[data-status=running]", timeout=120_000)
    page.click(f"{row} [data-test=job-cancel]")
    page.wait_for_selector(f"{row}[data-status=cancelled]", timeout=60_000)
    job = next(j for j in _get(f"{site}/api/jobs") if j["kind"] == "train" and j["meta"].get("model") == "ui-long")
    assert job["status"] == "cancelled" and job["progress"] < 0.5, job



# ---------------------------------------------------------------- the split the views read
def _doc_ids(pg) -> list[str]:
    return pg.eval_on_selector_all("[data-test=view-sentence] [data-test=doc-item]",
                                   "els => els.map(e => e.getAttribute('data-doc'))")


def test_choosing_another_split_records_it_and_redraws_the_views(site, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []  # a 409 while the new split is recorded is the protocol; nothing else may fail
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{site}/?view=sentence&model=tiny-gru")
    page.wait_for_selector("[data-test=view-sentence] [data-test=doc-item]")
    test_docs = _doc_ids(page)
    assert page.locator("[data-test=split-select]").input_value() == "test"
    records = "[data-test=jobs-panel] [data-test=job-row][data-kind=record]"
    _open_jobs(page)
    assert page.locator(f"{records}:has([data-test=job-split]:text-is('valid'))").count() == 0
    page.click("[data-test=jobs-button]")  # shut the panel again

    page.select_option("[data-test=split-select]", "valid")
    page.wait_for_function("() => location.search.includes('split=valid')")
    # the recording of the valid split runs as a job, shown with its split in the jobs panel
    _open_jobs(page)
    page.wait_for_selector(f"{records}[data-status=done]:has([data-test=job-split]:text-is('valid'))")
    page.click("[data-test=jobs-button]")
    # the document list redraws with the documents of the valid split
    page.wait_for_function("before => { const d = [...document.querySelectorAll("
                           "'[data-test=view-sentence] [data-test=doc-item]')].map(e => e.getAttribute('data-doc'));"
                           " return d.length > 0 && d.every(x => !before.includes(x)) }", arg=test_docs)
    valid_docs = _doc_ids(page)
    page.wait_for_selector("[data-test=recording-status]:text-is('ready')")
    # a document of the valid split draws its glyphs
    page.click(f"[data-test=view-sentence] [data-test=doc-item][data-doc='{valid_docs[0]}']")
    page.wait_for_selector("[data-test=view-sentence] [data-test=glyph]")
    _drawn(page, "[data-test=view-sentence]")
    shared = page.url
    assert "split=valid" in shared and f"doc={valid_docs[0]}" in shared

    # the shared link reopens the same split
    other = ctx.new_page()
    other.set_default_timeout(TIMEOUT)
    other.goto(shared)
    other.wait_for_selector("[data-test=view-sentence] [data-test=glyph]")
    assert other.locator("[data-test=split-select]").input_value() == "valid"
    assert _doc_ids(other) == valid_docs
    ctx.close()
    unexpected = [e for e in errors if "status of 409" not in e and not e.startswith("409 ")]
    assert not unexpected, f"console errors: {unexpected}"


def _stream_options(pg) -> list[str]:
    return pg.eval_on_selector_all("[data-test=stream-select] option", "els => els.map(e => e.value)")


def test_each_view_offers_the_streams_it_can_show(site, page):
    page.goto(f"{site}/?view=main&model=tiny-lstm")
    page.wait_for_selector("[data-test=view-main] [data-test=unit-cell]")
    memory = _stream_options(page)  # per-word statistics: h and c, no gate
    assert "layer0.fwd.h" in memory and "layer0.fwd.c" in memory and "layer0.fwd.gate.f" not in memory
    assert page.locator("[data-test=stream-note]").count() == 1
    page.click("[data-test=tab-detail]")
    page.wait_for_function("() => [...document.querySelectorAll('[data-test=stream-select] option')]"
                           ".some(o => o.value === 'layer0.fwd.gate.f')")
    page.select_option("[data-test=stream-select]", "layer0.fwd.gate.f")  # recomputed for the window shown
    page.wait_for_selector("[data-test=view-detail] [data-test=heatmap]")
    _drawn(page, "[data-test=view-detail]")
    page.click("[data-test=tab-pattern]")
    page.wait_for_selector("[data-test=view-pattern]")
    assert _stream_options(page) == ["layer0.fwd.h"]  # scans every token: stored streams only
