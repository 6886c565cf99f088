"""Open every page of the built book in a real browser and fail on visible errors.

    python tools/check_pages.py [_build/html] [--screenshot _build/screenshot.png]

What it does:
- serves the built HTML on 127.0.0.1 (a stdlib http.server in a thread);
- starts Debian's headless ``chromium`` with a fresh profile and drives it through the
  Chrome DevTools Protocol (a websocket, via the ``websocket-client`` package);
- for every page, waits for the load, forces lazy images to load, marks every ``<img>``
  whose ``naturalWidth`` is 0 with ``data-check-broken``, and takes the rendered DOM;
- looks in that DOM for what a reader must never see (``find_problems``): error output of
  an executed cell, a traceback, any stderr output box (warnings and progress bars
  included), a docutils/Sphinx error box, a broken image, a file name that linkify turned
  into a web address (``METHOD.md`` -> ``http://METHOD.md``), and MyST role syntax left
  as raw text (``{term}`...```); and it fails on any page or asset the server answered 404;
- saves a screenshot of one chapter (the first notebook page, or else the landing page).

``find_problems`` works on an HTML string alone, so tests/ checks it without a browser.
Exit status: 0 when every page is clean, 1 otherwise, 2 when the browser cannot be run.
"""
from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
]

# Built files that are not pages of the book.
SKIP_PAGES = {"search.html", "genindex.html", "py-modindex.html"}
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_sphinx_design_static", ".doctrees", ".jupyter_cache"}

TRACEBACK_TEXT = "Traceback (most recent call last)"
# In cell outputs: the name of a raised exception, as IPython prints it ("ValueError: ...",
# "Exception: ...", "KeyboardInterrupt").
ERROR_NAME = re.compile(r"\b(?:[A-Z]\w*(?:Error|Exception)|Exception|KeyboardInterrupt)\b")
# A link whose "host" is a file name: linkify's reading of a bare "METHOD.md" or "setup.py".
FILE_AS_HOST = re.compile(r"^https?://[\w.-]+\.(?:md|ipynb|py|txt|ya?ml|toml|json|cfg|bib)/?$", re.I)
# MyST role syntax a reader should never see as text: {term}`x`, {cite:t}`k`, {glue:text}`v`.
RAW_ROLE = re.compile(r"\{(?:term|cite(?::\w+)?|doc|ref|numref|eq|glue(?::\w+)?|math|abbr|download)\}`")
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}

# Runs in the page: load lazy images, wait for every image, mark the broken ones, and
# return the rendered DOM.
PAGE_SCRIPT = r"""
(async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) { if (img.loading === 'lazy') img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done, {once: true});
    img.addEventListener('error', done, {once: true});
    setTimeout(done, 15000);
  })));
  for (const img of imgs) {
    if (img.naturalWidth === 0) img.setAttribute('data-check-broken', img.currentSrc || img.src || '(no src)');
  }
  return document.documentElement.outerHTML;
})()
"""


# ---------------------------------------------------------------- the checks (no browser)
class _Scanner(HTMLParser):
    """Collects the text of cell outputs, error boxes and broken images of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, set[str]]] = []
        self.problems: list[str] = []
        self.outputs: list[tuple[set[str], list[str]]] = []  # (classes, text parts) per output block
        self._open_outputs: list[tuple[int, int]] = []  # (stack depth, index in outputs) of open blocks
        self._boxes: list[tuple[int, list[str]]] = []  # open docutils system-message boxes

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag == "a" and FILE_AS_HOST.match(attrs.get("href") or ""):
            self.problems.append(f"a file name rendered as a web link: {attrs['href']}")
        if tag == "img":
            if "data-check-broken" in attrs:
                self.problems.append(f"broken image: {attrs.get('data-check-broken') or attrs.get('src')}")
            return
        if tag in VOID_TAGS:
            return
        self.stack.append((tag, classes))
        depth = len(self.stack)
        if "output" in classes or "cell_output" in classes:
            self._open_outputs.append((depth, len(self.outputs)))
            self.outputs.append((classes, []))
        if "system-message" in classes:
            self._boxes.append((depth, []))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS and self.stack and self.stack[-1][0] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        # Pop to the matching tag (tolerates sloppy HTML).
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        depth = len(self.stack)
        while self._open_outputs and self._open_outputs[-1][0] > depth:
            self._open_outputs.pop()
        while self._boxes and self._boxes[-1][0] > depth:
            _, text = self._boxes.pop()
            self.problems.append("Sphinx/docutils error box: " + _short(" ".join(text)))

    def handle_data(self, data):
        if not data.strip():
            return
        # Text belongs to every open output block (an output div sits in a cell_output div).
        for _, index in self._open_outputs:
            self.outputs[index][1].append(data)
        for _, parts in self._boxes:
            parts.append(data)
        if TRACEBACK_TEXT in data and not self._in_code_source():
            self.problems.append("traceback text on the page: " + _short(data))
        if RAW_ROLE.search(data) and not self._in_code_source():
            self.problems.append("raw MyST role syntax on the page: " + _short(data))

    def _in_code_source(self) -> bool:
        """Inside the source of a code cell (what the reader types), not its output."""
        return any("cell_input" in classes for _, classes in self.stack)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def find_problems(html: str) -> list[str]:
    """Everything on a rendered page that a reader must not see; [] when clean."""
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    problems = list(scanner.problems)
    for classes, parts in scanner.outputs:
        if "cell_output" in classes:
            continue  # its inner output blocks are judged one by one
        text = "".join(parts)
        if "traceback" in classes or "error" in classes:
            problems.append("error output of a cell: " + _short(text))
        elif "stderr" in classes and ERROR_NAME.search(text):
            problems.append("stderr reports an error: " + _short(text))
        elif "stderr" in classes:
            problems.append("a stderr box (a warning or a progress bar) in a cell output: " + _short(text))
        elif ERROR_NAME.search(text) and re.search(r"^\s*\w*(?:Error|Exception)\b.*:", text, re.M):
            problems.append("cell output shows an exception: " + _short(text))
    # Keep the order, drop repeats (a traceback text is also inside its error output).
    seen: set[str] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]


def book_pages(build_dir: Path) -> list[Path]:
    """Every built page of the book, redirect stubs and Sphinx internals left out."""
    pages = []
    for path in sorted(build_dir.rglob("*.html")):
        rel = path.relative_to(build_dir)
        if rel.parts[0] in SKIP_DIRS or rel.name in SKIP_PAGES and len(rel.parts) == 1:
            continue
        head = path.read_text(encoding="utf-8", errors="replace")[:2000].lower()
        if 'http-equiv="refresh"' in head and "<body" not in head:
            continue  # index.html: a redirect to the root page
        pages.append(rel)
    return pages


def chapter_for_screenshot(build_dir: Path, pages: list[Path]) -> Path:
    """The first page built from a notebook; else the root page (where index.html points)."""
    for rel in pages:
        if (build_dir / "_sources" / rel.with_suffix(".ipynb")).exists():
            return rel
    index = build_dir / "index.html"
    if index.exists():
        target = re.search(r'url=([^"\'>\s]+)', index.read_text(encoding="utf-8", errors="replace"), re.I)
        if target and Path(target.group(1)) in pages:
            return Path(target.group(1))
    return pages[0]


# ---------------------------------------------------------------- the browser
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    missing: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 (signature of the base class)
        pass

    def send_error(self, code, message=None, explain=None):
        if code == 404 and not self.path.endswith("favicon.ico"):
            type(self).missing.append(self.path)
        super().send_error(code, message, explain)


def serve(directory: Path):
    handler = type("Handler", (_QuietHandler,), {"missing": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def find_chromium(explicit: str | None) -> str:
    for name in [explicit, os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]:
        if name and shutil.which(name):
            return shutil.which(name)
    raise FileNotFoundError("no chromium found: apt-get install -y chromium (or set CHROMIUM=/path/to/chrome)")


class DevTools:
    """A minimal Chrome DevTools Protocol client for one tab."""

    def __init__(self, ws_url: str):
        import websocket  # the websocket-client package

        self.ws = websocket.create_connection(ws_url, timeout=120, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 120, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, name: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, ev in enumerate(self.events):
                if ev["method"] == name:
                    return self.events.pop(i)
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(name)

    def close(self):
        self.ws.close()


def start_chromium(binary: str, profile: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--window-size=1280,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("chromium did not open its DevTools port")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as resp:
        targets = json.load(resp)
    page = next(t for t in targets if t.get("type") == "page")
    return proc, page["webSocketDebuggerUrl"]


def check_site(build_dir: Path, screenshot: Path | None, chromium: str | None = None) -> list[str]:
    """Open every page in chromium; return the problems found, each prefixed by its page."""
    pages = book_pages(build_dir)
    if not pages:
        return [f"no pages under {build_dir}"]
    shot_page = chapter_for_screenshot(build_dir, pages)
    server, handler = serve(build_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="check_pages_") as profile:
        proc, ws_url = start_chromium(find_chromium(chromium), Path(profile))
        tab = DevTools(ws_url)
        try:
            tab.call("Page.enable")
            tab.call("Runtime.enable")
            tab.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
            for rel in pages:
                handler.missing.clear()
                tab.events.clear()
                url = base + rel.as_posix()
                tab.call("Page.navigate", url=url)
                tab.wait_event("Page.loadEventFired", timeout=120)
                result = tab.call("Runtime.evaluate", expression=PAGE_SCRIPT, awaitPromise=True, returnByValue=True)
                if "exceptionDetails" in result:
                    problems.append(f"{rel}: the check script failed: {result['exceptionDetails'].get('text')}")
                    continue
                found = find_problems(result["result"]["value"])
                found += [f"missing file (404): {path}" for path in sorted(set(handler.missing))]
                problems += [f"{rel}: {p}" for p in found]
                print(f"  {'FAIL' if found else 'ok  '} {rel}", flush=True)
                if screenshot is not None and rel == shot_page:
                    shot = tab.call("Page.captureScreenshot", format="png")
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
                    print(f"  screenshot of {rel} -> {screenshot}", flush=True)
        finally:
            tab.close()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            server.shutdown()
    print(f"checked {len(pages)} pages: {len(problems)} problems")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshot", type=Path, default=Path("_build/screenshot.png"))
    parser.add_argument("--chromium", help="browser binary (default: chromium on PATH)")
    args = parser.parse_args(argv)
    if not args.build_dir.is_dir():
        print(f"{args.build_dir} is not a directory: build the book first", file=sys.stderr)
        return 2
    try:
        problems = check_site(args.build_dir, args.screenshot, args.chromium)
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"cannot run the browser check: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print("PROBLEM", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
