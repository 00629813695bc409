"""Headless Chromium for the HTML tests: a session fixture that installs Debian's `chromium` when missing (as
root, with apt-get) and skips only when it cannot; helpers to dump the DOM after scripts ran and to screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def _find() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    exe = _find()
    if exe is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        try:
            if subprocess.run(cmd, env=env, capture_output=True, timeout=1200).returncode != 0:
                subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
                subprocess.run(cmd, env=env, capture_output=True, timeout=1200)
        except (OSError, subprocess.TimeoutExpired):
            pass
        exe = _find()
    if exe is None:
        pytest.skip("chromium is not installed and could not be installed (apt-get install -y chromium)")
    return exe


def _run(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=180)


def dump_dom(exe: str, page: Path, tmp: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and Chromium's stderr (console errors show there)."""
    res = _run(exe, tmp, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom",
               page.resolve().as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, res.stderr


def screenshot(exe: str, page: Path, png: Path, tmp: Path, size: str = "1400,1100") -> Path:
    res = _run(exe, tmp, f"--screenshot={png}", f"--window-size={size}", "--hide-scrollbars",
               page.resolve().as_uri())
    assert res.returncode == 0 and png.exists() and png.stat().st_size > 5000, res.stderr[-2000:]
    return png


class Tables(HTMLParser):
    """Collects every <table> of a document: attributes and rows of cell texts (header row included)."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: list[dict] = []
        self._stack: list[dict] = []
        self._cell: list[str] | None = None
        self.tags: dict[str, list[dict[str, str]]] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.setdefault(tag, []).append(a)
        if tag == "table":
            t = {"attrs": a, "rows": []}
            self.tables.append(t)
            self._stack.append(t)
        elif tag == "tr" and self._stack:
            self._stack[-1]["rows"].append({"attrs": a, "cells": []})
        elif tag in ("td", "th") and self._stack:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            self._stack.pop()
        elif tag in ("td", "th") and self._cell is not None and self._stack:
            self._stack[-1]["rows"][-1]["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def by(self, key: str, value: str) -> dict:
        return next(t for t in self.tables if t["attrs"].get(key) == value)
