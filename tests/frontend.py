"""The real ComfyUI frontend in headless Chromium (Debian's ``chromium``), driven by Playwright.

``workflow_problems`` is the check every shipped workflow must pass in the page: its node types are
registered (no missing-node dialog), each widget value sits on the widget of that name, and the
frontend's own ``graphToPrompt()`` gives the API twin. It returns problems as text naming the file, the
node and the widget, so a broken workflow fails with a message a person can act on.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACK_EXTENSION_URL = "/extensions/laser-story/"
APP_READY = "() => !!(window.app && window.app.graph && window.app.extensionManager && window.app.vueAppReady)"
# The frontend asks the Comfy registry about node packs; offline (and under its own CSP) that is refused.
# Those are the frontend's requests, not errors of this pack.
FOREIGN_NOISE = ("https://api.comfy.org",)


def browser_path() -> str | None:
    return os.environ.get("LASER_STORY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLog:
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (text, source url)
    page_errors: list[str] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)  # url path -> last HTTP status

    def record(self, status: int, url: str) -> None:
        self.served[urllib.parse.urlsplit(url).path] = status
        if status >= 400:
            self.failed.append((status, url))

    def pack_errors(self) -> list[str]:
        """Console and page errors raised by the pack's own web files."""
        found = [f"console: {text} ({url})" for text, url in self.console_errors
                 if PACK_EXTENSION_URL in url and not any(n in text for n in FOREIGN_NOISE)]
        found += [f"page error: {e}" for e in self.page_errors if PACK_EXTENSION_URL in e]
        found += [f"HTTP {status}: {url}" for status, url in self.failed if PACK_EXTENSION_URL in url]
        return found


@contextmanager
def open_frontend(url: str, viewport: tuple[int, int] = (1600, 1000)) -> Iterator[tuple[Any, PageLog]]:
    """A fresh browser page on the ComfyUI page at ``url``, once the app has started."""
    from playwright.sync_api import sync_playwright

    executable = browser_path()
    if executable is None:
        raise RuntimeError("no Chromium found: `make setup` installs Debian's chromium package (or set LASER_STORY_CHROMIUM)")
    log = PageLog()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("console", lambda m: log.console_errors.append((m.text, m.location.get("url", "")))
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: log.page_errors.append(f"{e}\n{getattr(e, 'stack', '')}"))
            page.on("response", lambda r: log.record(r.status, r.url))
            page.goto(url)
            page.wait_for_function(APP_READY, timeout=120_000)
            yield page, log
        finally:
            browser.close()


def open_template(page: Any, pack: str, name: str) -> dict:
    """Open the template browser, pick the pack's card ``name`` as a user would; returns the size of the card's
    image (the frontend shows it from a blob URL of what it fetched)."""
    page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_text(pack, exact=True).first.click()
    card = page.locator(f"[data-testid='template-workflow-{name}']")
    card.wait_for(timeout=30_000)
    card.locator("img").first.wait_for(timeout=30_000)
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel); return i && i.complete; }",
        arg=f"[data-testid='template-workflow-{name}'] img", timeout=30_000)
    shown = page.evaluate(
        """sel => { const i = document.querySelector(sel); return {width: i.naturalWidth, height: i.naturalHeight}; }""",
        f"[data-testid='template-workflow-{name}'] img")
    before = page.evaluate("() => app.graph.nodes.length")
    card.click()
    page.wait_for_function("n => app.graph.nodes.length > 0 && app.graph.nodes.length !== n", arg=before, timeout=30_000)
    return shown


def load_graph(page: Any, workflow: dict) -> None:
    """Load a UI workflow as a file dropped on the page would be."""
    page.evaluate("wf => app.loadGraphData(wf)", workflow)
    time.sleep(0.5)


def workflow_problems(page: Any, file: str, workflow: dict, api: dict) -> list[str]:
    """What is wrong with ``workflow`` as loaded in the page, compared with its API twin ``api``."""
    graph = page.evaluate(
        """() => ({
            nodes: app.graph.nodes.map(n => ({
                id: String(n.id), type: n.type, registered: !!LiteGraph.registered_node_types[n.type],
                widgets: Object.fromEntries((n.widgets || []).filter(w => w.serialize !== false && !w.name.startsWith('$$'))
                                            .map(w => [w.name, w.value]))})),
            dialogs: Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText),
        })""")
    problems = []
    for node in graph["nodes"]:
        if not node["registered"]:
            problems.append(f"{file}: node {node['id']} has type {node['type']!r}, which no installed node pack provides")
    for text in graph["dialogs"]:
        if "missing" in text.lower():
            problems.append(f"{file}: the page shows a missing-node dialog: {' '.join(text.split())[:300]}")
    by_id = {n["id"]: n for n in graph["nodes"]}
    for node_id, spec in api.items():
        node = by_id.get(node_id)
        if node is None:
            problems.append(f"{file}: node {node_id} ({spec['class_type']}) of the API twin is not in the loaded graph")
            continue
        for name, value in spec["inputs"].items():
            if isinstance(value, list):
                continue  # a link, not a widget
            if name not in node["widgets"]:
                problems.append(f"{file}: node {node_id} ({node['type']}) has no widget {name!r}")
            elif node["widgets"][name] != value:
                problems.append(f"{file}: node {node_id} ({node['type']}) widget {name!r} holds "
                                f"{node['widgets'][name]!r}, the API twin says {value!r}")
    if problems:
        return problems
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    for node_id in sorted(set(prompt) | set(api)):
        got, want = prompt.get(node_id), api.get(node_id)
        if got is None or want is None:
            problems.append(f"{file}: node {node_id} is {'missing from' if got is None else 'extra in'} graphToPrompt()")
        elif got["class_type"] != want["class_type"]:
            problems.append(f"{file}: node {node_id} is {got['class_type']} in graphToPrompt(), {want['class_type']} in the API twin")
        else:
            # "$$" widgets are the frontend's own views (after a run core's animation preview adds a null input)
            for key in sorted(k for k in set(got["inputs"]) | set(want["inputs"]) if not k.startswith("$$")):
                if got["inputs"].get(key, "<absent>") != want["inputs"].get(key, "<absent>"):
                    problems.append(f"{file}: node {node_id} ({got['class_type']}) input {key!r} is "
                                    f"{json.dumps(got['inputs'].get(key, '<absent>'))} in graphToPrompt(), "
                                    f"{json.dumps(want['inputs'].get(key, '<absent>'))} in the API twin")
    return problems


def node_previews(page: Any) -> dict[str, dict]:
    """What each node shows after a run: images drawn or animated, and the pack's text and GIF views."""
    return page.evaluate(
        """() => Object.fromEntries(app.graph.nodes.map(n => {
            const view = name => (n.widgets || []).find(w => w.name === name);
            const img = el => !!(el && el.complete && el.naturalWidth > 0);
            const anim = view('$$comfy_animation_preview');
            const text = view('laser_story_result');
            const gif = view('laser_story_gif');
            return [String(n.id), {
                type: n.type,
                images: (n.imgs || []).filter(img).length + (anim ? anim.element.querySelectorAll('img').length : 0),
                text: text ? text.element.value : null,
                gif: gif ? {loaded: img(gif.element), src: gif.element.src} : null,
            }];
        }))""")


def run_from_page(page: Any, server: Any, timeout: float = 900) -> dict:
    """Press Run, wait for the job to finish on the server; returns its history entry."""
    before = set(server.get_json("/history"))
    page.get_by_role("button", name="Run", exact=True).first.click()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = server.get_json("/history")
        new = [pid for pid in history if pid not in before]
        if new and history[new[0]].get("status", {}).get("completed") is not None:
            return history[new[0]]
        time.sleep(0.5)
    raise TimeoutError(f"the run queued from the page did not finish within {timeout} s")


def screenshot(page: Any, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path
