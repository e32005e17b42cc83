"""The HTML view in a real browser (headless Chromium driven by playwright): mobilenet_v3_large
(random weights) loads without script errors, opens at its top-level modules within one
1280x800 screen, search finds a node, collapsing a module hides its nodes and expanding shows
them, a click on a node shows its source line; the picture of the same model with an op
without a lowering (the captured graph, 200+ calls) shows the calls in red with their stubs.

Skipped only where Chromium or playwright is absent (CI installs both: .ci/run)."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

import torch2keras
from compat import import_torchvision
from torch2keras.frontend_torch import LOWERINGS

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
playwright = pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium) to run the page in")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREEN = {"width": 1280, "height": 800}


def _line_of(marker: str) -> int:
    with open(__file__) as f:
        lines = [i for i, text in enumerate(f, start=1) if marker in text and "_line_of" not in text]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def model():
    tv = import_torchvision()
    torch.manual_seed(0)
    return tv.models.mobilenet_v3_large().eval(), torch.randn(1, 3, 64, 64)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("viewer")


def _captured(model, out):
    """The page of mobilenet_v3_large captured with aten.hardswish unlowered (232 calls; no
    Keras model is built: cheap enough for the default run)."""
    path = out / "mobilenet_v3_large_unsupported.html"
    if path.exists():  # (drawn for an earlier test of this module)
        return {"path": path, "line": _line_of("MARK-captured"), "nodes": None}
    builtin = LOWERINGS.pop(torch.ops.aten.hardswish.default)
    try:
        with pytest.raises(torch2keras.UnsupportedOpError):
            torch2keras.compile(*model, draw=str(path))  # MARK-captured
    finally:
        LOWERINGS[torch.ops.aten.hardswish.default] = builtin
    return {"path": path, "line": _line_of("MARK-captured"), "nodes": None}


def _converted(model, out):
    """The page of mobilenet_v3_large converted (and checked against PyTorch)."""
    path = out / "mobilenet_v3_large.html"
    result = torch2keras.compile(*model, draw=str(path))  # MARK-converted
    drawn = sum(1 for n in result.ir if n.op != "constant") + len(result.ir.outputs)
    return {"path": path, "line": _line_of("MARK-converted"), "nodes": drawn}


@pytest.fixture(scope="module", params=["captured", pytest.param("converted", marks=pytest.mark.slow)])
def page_of(request, model, out):
    return {"captured": _captured, "converted": _converted}[request.param](model, out) | {"kind": request.param,
                                                                                           "dir": out}


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _open(browser, path):
    page = browser.new_page(viewport=SCREEN)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"request {r.url}") if not r.url.startswith("file:") else None)
    page.goto(path.as_uri())
    page.wait_for_selector("#t2k-viewport [data-node]", state="attached")
    return page, errors


def _boxes_outside_screen(page) -> list:
    return page.evaluate("""() => [...document.querySelectorAll('#t2k-viewport [data-node],#t2k-viewport [data-group]')]
        .map(e => [e.getAttribute('data-node') || e.getAttribute('data-group'), e.getBoundingClientRect()])
        .filter(([, r]) => r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight)
        .map(([name]) => name)""")


def _shown(page) -> set:
    return set(page.evaluate("[...document.querySelectorAll('#t2k-viewport [data-node]')]"
                             ".map(e => e.getAttribute('data-node'))"))


def test_initial_view_fits_one_screen_and_loads_cleanly(page_of, browser):
    page, errors = _open(browser, page_of["path"])
    state = page.evaluate("window.torch2kerasView.state()")
    assert state["nodes"] >= 140 and state["nodes"] == (page_of["nodes"] or state["nodes"])
    if page_of["kind"] == "captured":
        assert state["nodes"] >= 150
    assert state["scale"] == 1  # no shrinking needed to fit
    assert state["shownNodes"] < 10 and page.locator('.group.collapsed[data-group="features"]').count() == 1
    assert _boxes_outside_screen(page) == []
    page.screenshot(path=str(page_of["dir"] / f"{page_of['kind']}_initial.png"))
    assert errors == []


def test_collapse_and_expand_a_module(page_of, browser):
    page, errors = _open(browser, page_of["path"])
    before = _shown(page)
    page.click('.group.collapsed[data-group="features"]')
    assert page.locator('.group.open[data-group="features"]').count() == 1
    assert page.locator('.group.collapsed[data-group^="features."]').count() == 17  # features.0 ... features.16
    opened = _shown(page)
    page.click('.group.collapsed[data-group="features.0"]')
    inner = _shown(page) - opened
    assert "hardswish" in inner, inner  # features.0.2, a module of one node: shown as the node
    assert page.locator('.group.open[data-group="features.0"]').count() == 1
    page.click('.group.open[data-group="features.0"] rect.hdr')
    assert _shown(page) == opened
    page.click('.group.open[data-group="features"] rect.hdr')
    assert _shown(page) == before
    assert errors == []


def test_search_finds_a_node_and_click_shows_its_source(page_of, browser):
    page, errors = _open(browser, page_of["path"])
    page.fill("#t2k-search", "hardsigmoid")
    assert page.locator("#t2k-results .count").inner_text() == "8 matches"  # one per squeeze-excitation
    page.press("#t2k-search", "Enter")  # reveals the first match: its modules open, it is selected
    selected = page.locator("#t2k-viewport .node.selected")
    assert selected.count() == 1 and "hardsigmoid" in selected.get_attribute("class")
    assert page.locator("#t2k-details").is_visible()
    page.click("#t2k-close")
    conv = page.locator('#t2k-viewport .node[class*="op-conv"]').first
    name = conv.get_attribute("data-node")
    conv.click()
    details = page.locator("#t2k-details").inner_text()
    assert f"%{name} = " in details and "features" in details
    assert f"{__file__}:{page_of['line']}" in details  # the user's line, not torch's or torchvision's
    if page_of["kind"] == "converted":
        assert "NHWC" in details and "max |err|" in details
    page.screenshot(path=str(page_of["dir"] / f"{page_of['kind']}_details.png"))
    assert errors == []


def test_failed_conversion_shows_unsupported_calls_with_stubs(model, out, browser):
    page, errors = _open(browser, _captured(model, out)["path"])
    assert page.locator('.group.collapsed.status-unsupported[data-group="features"]').count() == 1
    page.fill("#t2k-search", "hardswish")
    assert page.locator("#t2k-results .count").inner_text() == "21 matches"
    page.press("#t2k-search", "Enter")
    assert page.locator("#t2k-viewport .node.selected.status-unsupported").count() == 1
    details = page.locator("#t2k-details").inner_text()
    assert "@torch2keras.converter(torch.ops.aten.hardswish.default" in details
    page.screenshot(path=str(out / "unsupported.png"))
    assert errors == []
