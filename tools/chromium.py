"""Open report pages in headless Chromium (Debian's `chromium`) and see what a person would see.

Playwright drives the installed browser (`executable_path`): nothing is downloaded. Each page is
opened from a file:// URL with every request off the file system refused and recorded, so a
page that needs the network shows up as failing. `open_page` waits until every chart of the page
has drawn (each `div.chart` holds Plotly's SVG), and reports the console errors, the uncaught
page errors, the refused requests and the charts, and can save a screenshot.

Used by the end-to-end tests of the reports and by `tools/report_screenshot.py`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    FloatRect,
    Page,
    Playwright,
    Request,
    Route,
    ViewportSize,
    sync_playwright,
)

# Flags that work on these machines, as root, with no GPU and no network. Playwright gives each
# launch a fresh profile (user data dir) of its own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

ALL_CHARTS_DRAWN = """() => {
    const charts = Array.from(document.querySelectorAll('div.chart'));
    return charts.length > 0 && charts.every(d => d.querySelector('svg.main-svg') !== null);
}"""

CHART_SUMMARY = """() => Array.from(document.querySelectorAll('div.chart')).map(d => ({
    name: d.dataset.chart,
    traces: (d.data || []).length,
    points: (d.data || []).reduce(
        (n, t) => n + (t.x ? t.x.length : 0) + (t.q1 ? t.q1.length : 0), 0),
    drawn: d.querySelector('svg.main-svg') !== null,
}))"""


def find_chromium() -> str | None:
    """The path of the chromium executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True, slots=True)
class Chart:
    name: str  # the div's data-chart
    traces: int
    points: int  # x values (and box statistics) over all traces
    drawn: bool  # Plotly's SVG is in the div


@dataclass
class LoadedPage:
    """A page after every chart drew, with what went wrong on the way."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    refused_requests: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)

    def figures(self) -> dict[str, str]:
        """Text of every element with a data-key, by key (the figures of the page's tables)."""
        pairs: list[tuple[str, str]] = self.page.evaluate(
            "() => Array.from(document.querySelectorAll('[data-key]'))"
            ".map(e => [e.dataset.key, e.textContent.trim()])"
        )
        return dict(pairs)

    def screenshot(self, path: Path, *, full_page: bool = True, height: int | None = None) -> Path:
        """Save a PNG of the page (or of its top `height` pixels)."""
        if height is None:
            self.page.screenshot(path=str(path), full_page=full_page)
        else:
            width = self.page.viewport_size["width"] if self.page.viewport_size else 1400
            clip: FloatRect = {"x": 0, "y": 0, "width": width, "height": height}
            self.page.screenshot(path=str(path), full_page=True, clip=clip)
        return path


class Chromium:
    """A headless Chromium for the duration of a `with` block."""

    def __init__(self, executable: str, *, width: int = 1400, height: int = 900) -> None:
        self.executable = executable
        self.viewport: ViewportSize = {"width": width, "height": height}
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def __enter__(self) -> Chromium:
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=self.executable, args=list(CHROMIUM_FLAGS)
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()

    def open_page(self, path: Path, *, deadline_seconds: float = 90.0) -> LoadedPage:
        """Open a local HTML file and wait until every chart on it has drawn."""
        if self._browser is None:
            raise RuntimeError("use Chromium in a with block")
        page = self._browser.new_page(viewport=self.viewport)
        loaded = LoadedPage(page)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                loaded.console_errors.append(message.text)

        def on_request(route: Route, request: Request) -> None:
            if request.url.startswith(("file:", "data:", "blob:")):
                route.continue_()
            else:
                loaded.refused_requests.append(request.url)
                route.abort()

        page.on("console", on_console)
        page.on("pageerror", lambda error: loaded.page_errors.append(str(error)))
        page.route("**/*", on_request)
        page.goto(path.resolve().as_uri())
        page.wait_for_function(ALL_CHARTS_DRAWN, timeout=deadline_seconds * 1000)
        loaded.charts = [Chart(**c) for c in page.evaluate(CHART_SUMMARY)]
        return loaded
