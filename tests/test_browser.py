"""The built website in a real browser: headless Chromium, driven by Playwright, offline.

Loads every page of `_build/html` from a local HTTP server and checks what a reader sees: no
JavaScript errors, every image loaded, the math typeset by MathJax (no raw TeX left), each
chapter's Colab button opening that chapter's notebook in this repository, at least one plot
from the executed chapter on each chapter page, and a search that finds something. The CDN
scripts (MathJax, RequireJS, the widget manager) are served from `_build/vendor`
(`bash tools/fetch_js.sh`); any other request that leaves the machine is blocked and reported.
A screenshot of each page lands in `_build/screenshots/` (`NN_name.png`, `NN_name.plot.png` for the
chapter's first plot, `NN_name.widget.png` for its first widget), with `report.json` (timings).

Needs the site built with its chapters executed (`bash tools/book.sh`), Debian's `chromium`
and the vendored scripts; without them it skips, saying why, unless `MINGPT_REQUIRE_BROWSER=1`
(CI) turns the skip into a failure.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks  # noqa: E402  (tools/notebooks.py: the same Colab link the chapters' badges are made from)

SITE = Path(os.environ.get("MINGPT_SITE", ROOT / "_build" / "html"))
VENDOR = Path(os.environ.get("MINGPT_VENDOR", ROOT / "_build" / "vendor"))
SHOTS = Path(os.environ.get("MINGPT_SCREENSHOTS", ROOT / "_build" / "screenshots"))
REQUIRED = os.environ.get("MINGPT_REQUIRE_BROWSER") == "1"
CHAPTER = re.compile(r"^\d\d_\w+$")

# CDN prefix -> local folder (the URLs myst-nb and Sphinx write into the pages)
CDN = {
    "https://cdn.jsdelivr.net/npm/mathjax@3/": VENDOR / "mathjax",
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js": VENDOR / "requirejs" / "require.js",
    "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/": VENDOR / "html-manager",
}
# npm has RequireJS 2.3.4 unminified only, so its bytes differ from the CDN's require.min.js: the
# pages are served with that one script's subresource-integrity hash removed
NOT_BYTE_IDENTICAL = ("https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js",)
WIDGET_FONTS = "/@jupyter-widgets/html-manager/dist/"
# the two messages every Jupyter Book 1 page logs, harmless (sphinx-thebe declares THEBE_JS_URL
# twice; the theme's mode switch logs an invalid mode before it settles)
HARMLESS_CONSOLE = ("THEBE_JS_URL", "invalid theme mode")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def without_integrity(html: str) -> str:
    """The page with the integrity attribute dropped from the scripts in NOT_BYTE_IDENTICAL."""
    def drop(tag):
        return re.sub(r'\s+integrity="[^"]*"', "", tag.group(0))
    for url in NOT_BYTE_IDENTICAL:
        html = re.sub(r'<script[^>]*src="' + re.escape(url) + r'"[^>]*>', drop, html)
    return html


def skip_or_fail(reason: str):
    if REQUIRED:
        pytest.fail(f"MINGPT_REQUIRE_BROWSER=1, but: {reason}")
    pytest.skip(reason)


def chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def pages() -> list[Path]:
    """Every page of the site: the book's pages, the glossary, search and the index."""
    found = sorted((SITE / "book").glob("*.html")) + [SITE / "search.html", SITE / "genindex.html"]
    return [p for p in found if p.exists()]


def colab_url(stem: str) -> str:
    """The launch link a chapter must have: _config.yml's repository url and branch."""
    return notebooks.colab_url(*notebooks.repository(), Path(f"{stem}.ipynb"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# what the page reports about itself, after MathJax has finished
PAGE_STATE_JS = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = [...document.querySelectorAll('img')];
  for (const img of imgs) {
    if (!img.complete) { img.scrollIntoView(); await new Promise(r => { img.onload = img.onerror = r; setTimeout(r, 5000); }); }
  }
  // saved widget state: the widget manager renders each view after the page loads
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  for (let i = 0; views && i < 150 && document.querySelectorAll('.jupyter-widgets').length < views; i++) {
    await new Promise(r => setTimeout(r, 100));
  }
  const article = document.querySelector('article') || document.body;
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, mjx-container, script, style, .highlight, .cell_output').forEach(e => e.remove());
  const text = clone.textContent;
  return {
    images: imgs.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
    mathElements: document.querySelectorAll('span.math, div.math').length,
    mathUntypeset: [...document.querySelectorAll('span.math, div.math')]
        .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80)),
    mjx: document.querySelectorAll('mjx-container').length,
    rawTex: (text.match(/(\\$\\$|\\\\\\(|\\\\\\[|\\\\begin\\{)[^\\n]{0,60}/g) || []),
    colab: [...document.querySelectorAll('a[href*="colab.research.google.com"]')].map(a => a.href),
    plots: [...document.querySelectorAll('.cell_output img')]
        .filter(i => i.naturalWidth > 0 && /\\.(png|jpg|jpeg|svg)$/.test(i.getAttribute('src') || '')).length,
    links: [...document.querySelectorAll('article a.reference.internal')].map(a => a.getAttribute('href')),
    widgetViews: views,
    widgetsRendered: document.querySelectorAll('.jupyter-widgets').length,
  };
}
"""


@pytest.fixture(scope="module")
def site():
    """Visit every page once; return {page name: what it showed}, plus the blocked requests."""
    if not (SITE / "index.html").exists():
        skip_or_fail(f"no built site at {SITE}: run `bash tools/book.sh` first")
    if (SITE / ".no-execute").exists():
        skip_or_fail(f"the site at {SITE} was built with --no-execute (no outputs): run `bash tools/book.sh`")
    browser_path = chromium()
    if not browser_path:
        skip_or_fail("no Chromium: install Debian's `chromium` (apt-get install chromium)")
    missing = [str(p) for p in CDN.values() if not p.exists()]
    if missing:
        skip_or_fail(f"no local copy of the CDN scripts ({', '.join(missing)}): run `bash tools/fetch_js.sh`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is missing (pip install -r requirements.txt)")

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(SITE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    blocked: list[str] = []
    missing_local: list[str] = []
    page_relative_fonts: set[str] = set()

    def route(r):
        url = r.request.url
        if url.startswith(base) and WIDGET_FONTS in url:
            # the widget manager asks for its icon fonts relative to the page, not to its own URL
            # (a known quirk of html-manager 1.0.x: they are missing on the published site too);
            # serve them, so the screenshots show the widgets as meant, and list them in the report
            font = VENDOR / "html-manager" / "dist" / url.rsplit("/", 1)[1]
            page_relative_fonts.add(url.split(WIDGET_FONTS, 1)[1])
            return r.fulfill(path=str(font)) if font.is_file() else r.abort()
        if url.startswith(base):
            local = SITE / unquote(urlparse(url).path.lstrip("/"))
            if local.suffix == ".html" and local.is_file():
                return r.fulfill(body=without_integrity(local.read_text(encoding="utf-8")),
                                 content_type="text/html; charset=utf-8")
            return r.continue_()
        for prefix, local in CDN.items():
            if url.startswith(prefix):
                path = local / url[len(prefix):].split("?")[0] if local.is_dir() else local
                if path.is_file():
                    return r.fulfill(path=str(path), headers={"Access-Control-Allow-Origin": "*"})
                missing_local.append(url)
                return r.abort()
        blocked.append(url)
        return r.abort()

    SHOTS.mkdir(parents=True, exist_ok=True)
    results, start = {}, time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", route)
        for html in pages():
            rel = html.relative_to(SITE).as_posix()
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(f"page error: {e}")
                    if not any(h in str(e) for h in HARMLESS_CONSOLE) else None)
            page.on("console", lambda m, errors=errors: errors.append(f"console {m.type}: {m.text}")
                    if m.type == "error" and not any(h in m.text for h in HARMLESS_CONSOLE) else None)
            page.on("requestfailed", lambda r, errors=errors: errors.append(f"request failed: {r.url}")
                    if r.url.startswith(base) else None)
            page.on("response", lambda r, errors=errors: errors.append(f"HTTP {r.status}: {r.url}")
                    if r.status >= 400 else None)
            t0 = time.perf_counter()
            page.goto(base + rel, wait_until="load")
            state = page.evaluate(PAGE_STATE_JS)
            state["errors"] = errors
            state["seconds"] = round(time.perf_counter() - t0, 2)
            stem = html.stem if rel.startswith("book/") else rel.replace("/", "_").removesuffix(".html")
            page.screenshot(path=str(SHOTS / f"{stem}.png"))
            plot = page.query_selector(".cell_output img")
            if plot is not None:
                plot.scroll_into_view_if_needed()
                plot.screenshot(path=str(SHOTS / f"{stem}.plot.png"))
            # the first widget a reader sees: a progress bar closed when its loop ended (tqdm's leave=False)
            # stays in the page, hidden, and cannot be photographed
            widget = next((w for w in page.query_selector_all(".jupyter-widgets") if w.is_visible()), None)
            if widget is not None:
                widget.scroll_into_view_if_needed()
                widget.screenshot(path=str(SHOTS / f"{stem}.widget.png"))
            results[stem] = state
            page.close()
        # search works offline: the index is a local script
        page = context.new_page()
        page.goto(base + "search.html?q=attention", wait_until="load")
        page.wait_for_selector("#search-results ul.search li", timeout=30_000)
        hits = page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.getAttribute('href'))")
        page.screenshot(path=str(SHOTS / "search_attention.png"))
        page.close()
        browser.close()
    server.shutdown()
    total = round(time.perf_counter() - start, 1)
    report = {"seconds": total, "pages": {k: {"seconds": v["seconds"], "images": len(v["images"]),
                                               "plots": v["plots"], "mjx": v["mjx"], "widgets": v["widgetViews"]}
                        for k, v in results.items()},
              "search_hits": len(hits), "blocked": blocked, "missing_local": missing_local,
              "widget_fonts_requested_page_relative": sorted(page_relative_fonts)}
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1))
    print(f"browser test: {len(results)} pages in {total} s; screenshots in {SHOTS}")
    return {"pages": results, "blocked": blocked, "missing_local": missing_local, "search_hits": hits}


def chapters(site) -> dict:
    return {k: v for k, v in site["pages"].items() if CHAPTER.match(k)}


def test_every_page_of_the_book_was_visited(site):
    toc = re.findall(r"file:\s*book/(\S+)", (ROOT / "_toc.yml").read_text()) + ["intro"]
    assert set(toc) <= set(site["pages"]), f"pages missing from the site: {set(toc) - set(site['pages'])}"


def test_no_errors_on_any_page(site):
    problems = {k: v["errors"] for k, v in site["pages"].items() if v["errors"]}
    assert not problems, json.dumps(problems, indent=1)


def test_nothing_loads_from_the_network(site):
    assert not site["blocked"], f"requests that left the machine (blocked): {site['blocked']}"
    assert not site["missing_local"], f"CDN files missing from _build/vendor: {site['missing_local']}"


def test_every_image_loaded(site):
    broken = {k: [i["src"] for i in v["images"] if not i["ok"]] for k, v in site["pages"].items()}
    broken = {k: v for k, v in broken.items() if v}
    assert not broken, f"images that did not load (naturalWidth 0): {broken}"


def test_math_is_typeset(site):
    problems = {}
    for name, v in site["pages"].items():
        if v["mathElements"] and not v["mjx"]:
            problems[name] = "math on the page, but no MathJax output"
        elif v["mathUntypeset"] or v["rawTex"]:
            problems[name] = {"untypeset": v["mathUntypeset"][:3], "raw TeX": v["rawTex"][:3]}
    assert not problems, json.dumps(problems, indent=1)
    assert sum(v["mjx"] for v in chapters(site).values()) > 0, "no chapter shows typeset math at all"


def test_saved_widgets_render(site):
    """Explorers show their saved state on the static site (they cannot recompute without a kernel)."""
    broken = {k: f"{v['widgetsRendered']} rendered of {v['widgetViews']}" for k, v in site["pages"].items()
              if v["widgetsRendered"] < v["widgetViews"]}
    assert not broken, broken


def test_colab_button_opens_this_chapter(site):
    wrong = {}
    for name, v in chapters(site).items():
        if colab_url(name) not in v["colab"]:
            wrong[name] = {"expected": colab_url(name), "found": v["colab"]}
    assert not wrong, json.dumps(wrong, indent=1)


def test_every_chapter_shows_an_executed_plot(site):
    empty = [name for name, v in chapters(site).items() if v["plots"] == 0]
    assert not empty, (f"chapters without a plot from their execution: {empty} "
                       "(was the site built with execution off?)")


def test_intro_links_every_chapter_and_the_glossary(site):
    links = {Path(h.split("#")[0]).stem for h in site["pages"]["intro"]["links"]}
    missing = {k for k in chapters(site)} - links
    assert not missing, f"the introduction does not link to {missing}"
    assert "glossary" in links


def test_search_finds_a_chapter(site):
    assert any("03_attention" in h for h in site["search_hits"]), site["search_hits"][:10]
