"""PDF through headless Chromium's print-to-PDF (Debian package ``chromium``).

`chromium_path()` finds the browser (``ALLPAYER_CHROMIUM`` overrides); `html_to_pdf` prints one
HTML file with a private, temporary profile and no network features."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from allpayer.errors import AllpayerError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class PdfError(AllpayerError):
    """Chromium is missing or failed to print a report."""


def chromium_path() -> str | None:
    env = os.environ.get("ALLPAYER_CHROMIUM")
    if env:
        return env if Path(env).exists() else shutil.which(env)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(html_file: Path, pdf_file: Path, timeout: int = 120) -> Path:
    exe = chromium_path()
    if exe is None:
        raise PdfError("PDF output needs Chromium: install the `chromium` package (Debian: apt-get install chromium) "
                       "or set ALLPAYER_CHROMIUM to the browser's path")
    html_file, pdf_file = Path(html_file).absolute(), Path(pdf_file).absolute()
    pdf_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="allpayer-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf_file}",
               html_file.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise PdfError(f"Chromium did not finish printing {html_file.name} within {timeout} s") from e
    if done.returncode != 0 or not pdf_file.exists() or pdf_file.stat().st_size == 0:
        tail = (done.stderr or "").strip().splitlines()[-1:] or [""]
        raise PdfError(f"Chromium failed to print {html_file.name} (exit {done.returncode}): {tail[0]}")
    return pdf_file
