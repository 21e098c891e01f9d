"""A real headless browser for the portal tests, and the accessibility checker.

The browser is Debian's ``chromium`` package, driven by Playwright through
``executable_path``: Playwright's own browser downloads are never used (the
machines reach package registries only). When the package is missing and the
tests run as root, it is installed with apt-get, once, under a lock.

axe-core (pinned in ``tests/portal/package.json``) is installed with
``npm ci`` like the test OpenID provider, and evaluated in the page through
the DevTools protocol, which the portal's Content-Security-Policy (no inline
script) does not govern, so the pages are checked exactly as served.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from support.idp import ensure_node_modules

CHROMIUM = Path("/usr/bin/chromium")
PORTAL_TESTS = Path(__file__).resolve().parent.parent / "portal"
APT_TIMEOUT_S = 900.0

# No network the tests did not ask for: no QUIC, no component or safe-browsing
# updates, no sync; a fresh profile per launch.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserSetupError(RuntimeError):
    """Chromium or axe-core could not be made available."""


def ensure_chromium() -> Path:
    """The Chromium executable, installed from Debian's packages if missing."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BrowserSetupError(
            f"{CHROMIUM} is missing: the portal tests need Debian's chromium "
            "package (as root: apt-get update && apt-get install -y chromium)"
        )
    lock_path = Path(tempfile.gettempdir()) / "soars-chromium-apt.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if CHROMIUM.exists():
            return CHROMIUM
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            [apt, "update", "-qq"],
            [apt, "install", "-y", "-qq", "chromium"],
        ):
            try:
                done = subprocess.run(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=APT_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise BrowserSetupError(f"`{' '.join(command)}` timed out") from exc
            if done.returncode != 0:
                raise BrowserSetupError(
                    f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stderr}"
                )
    if not CHROMIUM.exists():
        raise BrowserSetupError(f"chromium was installed but {CHROMIUM} is missing")
    return CHROMIUM


def axe_source() -> str:
    """axe.min.js of the pinned axe-core."""
    ensure_node_modules(PORTAL_TESTS)
    return (PORTAL_TESTS / "node_modules" / "axe-core" / "axe.min.js").read_text()


# WCAG 2.0 and 2.1, levels A and AA: what public agencies must meet.
_AXE_RUN = """
() => axe.run(document, {
  runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                   "best-practice"]},
  resultTypes: ["violations"],
})
"""


async def accessibility_violations(
    page: Any, source: str, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[str]:
    """axe-core's violations of the given impacts on the page, one line each."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(source)
    results = await page.evaluate(_AXE_RUN)
    found = []
    for violation in results["violations"]:
        if violation["impact"] in impacts:
            targets = [" ".join(node["target"]) for node in violation["nodes"][:5]]
            found.append(
                f"{violation['impact']} {violation['id']}: {violation['help']} "
                f"at {targets}"
            )
    return found
