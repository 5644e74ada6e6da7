"""PDF through headless Chromium's print-to-PDF (Debian package ``chromium``).

`chromium_path()` finds the browser (``ALLPAYER_CHROMIUM`` overrides); `html_to_pdf` prints one
HTML file with a private, temporary profile and no network features; `Printer` keeps one browser
running and prints many files through it (``report --all``)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
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


class Printer:
    """One headless Chromium for many PDFs, driven over its DevTools pipe (``--remote-debugging-pipe``:
    JSON messages ended by a NUL byte, read by the browser on fd 3 and written on fd 4). Starting
    the browser costs about a second; printing a page on a running one a small fraction of that.

    ``Printer().print(html_file, pdf_file)`` prints like `html_to_pdf` (Letter, default margins, no
    header or footer); ``close()`` ends the browser and removes its temporary profile."""

    def __init__(self, timeout: int = 120):
        import select  # noqa: F401  (checked here: the pipe protocol needs it)

        exe = chromium_path()
        if exe is None:
            raise PdfError("PDF output needs Chromium: install the `chromium` package (Debian: apt-get install "
                           "chromium) or set ALLPAYER_CHROMIUM to the browser's path")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="allpayer-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds():  # in the child, before exec: the pipe ends become fds 3 and 4
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={self._profile}", "--remote-debugging-pipe", "about:blank"]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, preexec_fn=fds, pass_fds=(3, 4))
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self._events: list[dict] = []
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self._call("Page.enable", session=True)
        except BaseException:
            self.close()
            raise

    def _send(self, msg: dict) -> None:
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_child, data):]

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise PdfError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise PdfError(f"Chromium ended unexpectedly (exit {self._proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def _call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        self._send(msg)
        deadline = time.monotonic() + self.timeout
        while True:
            got = self._read(deadline)
            if got.get("id") == self._id:
                if "error" in got:
                    raise PdfError(f"Chromium: {method} failed: {got['error'].get('message')}")
                return got.get("result", {})
            self._events.append(got)

    def _wait_event(self, name: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, e in enumerate(self._events):
                if e.get("method") == name and e.get("sessionId") == self._session:
                    del self._events[: i + 1]
                    return
            self._events.clear()
            self._events.append(self._read(deadline))

    def print(self, html_file: Path, pdf_file: Path) -> Path:
        html_file, pdf_file = Path(html_file).absolute(), Path(pdf_file).absolute()
        pdf_file.parent.mkdir(parents=True, exist_ok=True)
        self._events.clear()
        self._call("Page.navigate", {"url": html_file.as_uri()}, session=True)
        self._wait_event("Page.loadEventFired")
        data = self._call("Page.printToPDF", {"printBackground": False}, session=True)["data"]
        pdf_file.write_bytes(base64.b64decode(data))
        if pdf_file.stat().st_size == 0:
            raise PdfError(f"Chromium printed an empty PDF for {html_file.name}")
        return pdf_file

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                self._call("Browser.close")
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for fd in (getattr(self, "_to_child", None), getattr(self, "_from_child", None)):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_child = self._from_child = None
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Printer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
