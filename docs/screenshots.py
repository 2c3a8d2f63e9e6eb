"""Screenshots of report pages for the README: ``python docs/screenshots.py run=DIR sweep=DIR …``
renders ``loadgen report DIR`` for each and saves ``docs/report-NAME.png`` (headless Chromium)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadgen.cli import main
from tests.browser import open_page

WIDTH = 1240


async def shoot(pages: dict[str, Path], out: Path) -> None:
    async with open_page() as page:
        for name, html in pages.items():
            await page.navigate(f"file://{html}")
            await page.wait_for("document.querySelectorAll('.js-plotly-plot').length > 0")
            height = await page.evaluate("document.body.scrollHeight")
            await page.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=min(int(height) + 40, 4000),
                            deviceScaleFactor=1, mobile=False)  # fmt: skip
            await asyncio.sleep(1.5)  # Plotly redraws at the new size
            await page.screenshot(out / f"report-{name}.png")
            print(out / f"report-{name}.png")


def run() -> int:
    pages = {}
    work = Path(tempfile.mkdtemp())
    for argument in sys.argv[1:]:
        name, _, directory = argument.partition("=")
        pages[name] = work / f"{name}.html"
        if main(["report", directory, "--output", str(pages[name])]) != 0:
            return 1
    asyncio.run(shoot(pages, Path(__file__).parent))
    return 0


if __name__ == "__main__":
    sys.exit(run())
