"""Defects of issue 13 found in a browser walk, each checked in a real browser (Debian's Chromium
driven by Playwright) on a live server with the tiny models of web_support."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from web_support import chromium_available, checked_page, live_server, make_workspace, own_data, wait_drawn

WEB = Path(__file__).resolve().parent.parent / "src" / "rnnvis" / "web" / "index.html"

pytestmark = [
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed "
                       "(`apt-get install -y chromium`; `make test` does it as root)"),
    pytest.mark.skipif(not WEB.exists(), reason="the web app is not built (`make frontend`)"),
]

TIMEOUT = 60_000  # ms; first requests compute analyses on two slow cores


def _wait_job(url: str, job: dict) -> None:
    while job["status"] in ("queued", "running"):
        with urllib.request.urlopen(f"{url}/api/jobs/{job['id']}", timeout=30) as r:
            job = json.loads(r.read())
    assert job["status"] == "done", job


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = make_workspace(tmp_path_factory.mktemp("web") / "home")
    with live_server(home, data=own_data(home)) as url:
        for ref in ("tiny-lstm", "tiny-gru", "tiny-sentiment"):
            req = urllib.request.Request(f"{url}/api/models/{ref}/record", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                _wait_job(url, json.loads(r.read()))
        yield url


@pytest.fixture
def page(browser):
    with checked_page(browser, TIMEOUT) as pg:
        yield pg


# ---------------------------------------------------------------- 1. pattern match -> detail
def test_a_pattern_match_opens_detail_at_the_match_coloured_by_the_selected_units(site, page):
    with urllib.request.urlopen(f"{site}/api/models/tiny-lstm/documents?limit=1", timeout=30) as r:
        doc = json.loads(r.read())["documents"][0]["doc"]
    # one word of the first document at a low threshold: a few units, on again in a dozen phrases
    page.goto(f"{site}/?view=pattern&model=tiny-lstm&doc={doc}&pdoc={doc}&start=2&stop=3&threshold=0.1")
    rows = "[data-test=view-pattern] [data-test=match-row]"
    page.wait_for_selector(rows)
    units = page.eval_on_selector_all("[data-test=view-pattern] [data-test=pattern-unit]",
                                      "els => els.map(e => e.getAttribute('data-unit'))")
    assert units
    row = page.locator(f"{rows}:not([data-start='0'])").first
    start = int(row.get_attribute("data-start"))
    row.click()
    page.wait_for_selector("[data-test=view-detail] [data-test=token]")
    source = page.locator("[data-test=detail-source]").inner_text()
    assert f"tokens {start}–" in source, source
    title = page.locator("[data-test=chart-text] header").first.inner_text()
    assert "most active unit" not in title and "(mean)" in title, title
    assert f"units {', '.join(units)} (mean)" in title, (units, title)
    assert f"at={start}" in page.url


# ---------------------------------------------------------------- 2. history
def _view_shown(pg, view: str) -> None:
    pg.wait_for_selector(f"[data-test=view-{view}]")
    assert f"view={view}" in pg.url or (view == "main" and "view=" not in pg.url)


def test_back_and_forward_move_between_views_and_models(site, page):
    page.goto(f"{site}/?model=tiny-lstm")
    _view_shown(page, "main")
    page.click("[data-test=tab-summary]")
    _view_shown(page, "summary")
    page.select_option("[data-test=model-select]", "tiny-gru")
    page.wait_for_function("() => location.search.includes('model=tiny-gru')")
    page.click("[data-test=tab-detail]")
    _view_shown(page, "detail")
    page.go_back()
    _view_shown(page, "summary")
    assert "model=tiny-gru" in page.url
    page.go_back()
    page.wait_for_function("() => location.search.includes('model=tiny-lstm')")
    assert page.locator("[data-test=model-select]").input_value() == "tiny-lstm"
    _view_shown(page, "summary")
    page.go_back()
    _view_shown(page, "main")
    page.go_forward()
    _view_shown(page, "summary")
    assert page.url.startswith(site)


# ---------------------------------------------------------------- 11. a unit that does not exist
def test_detail_with_a_unit_that_does_not_exist_says_the_valid_range(site, page):
    page.goto(f"{site}/?view=detail&model=tiny-lstm&unit=999")
    err = page.wait_for_selector("[data-test=view-detail] [data-test=detail-unit-error]")
    text = err.inner_text()
    assert "999" in text and "0 to 23" in text, text  # tiny-lstm: 24 hidden units
