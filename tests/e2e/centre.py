"""The demo centre as the end-to-end tests run it: every process real, every port free, and the
screenshots they keep (tests/artifacts/e2e/)."""
from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from provisioning.demo import DemoCentre, Ports, free_port
from tests.services import Log, explain

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "e2e"
# Milliseconds a page waits for what the station or the edge does in the background (an MQTT
# round trip, a restart, the dashboard's refresh): generous for a loaded 2-core machine. Waits
# whose length is what a test checks (a question's time) say so where they are.
UI_TIMEOUT = 60_000


def free_port_pair() -> int:
    """A port whose successor is free too (two kiosks)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


@contextlib.contextmanager
def running_centre(root: Path, prefix: str, *, stations: int = 1, **options: Any) -> Iterator[tuple[DemoCentre, dict]]:
    """A demo centre (a centre id of its own) started in ``root``; yields it and its staff login."""
    demo = DemoCentre(
        root,
        ports=Ports(web=free_port(), kiosk=free_port_pair() if stations > 1 else free_port(), mqtt=free_port(),
                    mqtt_tls=free_port(), redis=free_port()),
        centre=f"{prefix}{uuid.uuid4().hex[:6]}", stations=stations, **options,
    )
    login = demo.prepare()
    demo.start()
    try:
        yield demo, login
    finally:
        demo.stop()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def logs_of(demo: DemoCentre, *names: str) -> list[Path]:
    """The log files of the demo's processes ``names`` (``station-st-01``, ``edge-worker``, ...)."""
    return [demo.logs / f"{name}.log" for name in names]


@contextlib.contextmanager
def explained(what: str, logs: Iterable[Log] = ()) -> Iterator[None]:
    """A Playwright wait that runs out becomes a TimeoutError saying what the page waited for, with
    the tail of ``logs``."""
    try:
        yield
    except PlaywrightTimeoutError as exc:
        raise TimeoutError(explain(f"{what}: {str(exc).splitlines()[0]}", logs)) from exc


def wait_selector(page, selector: str, what: str, logs: Iterable[Log] = (), timeout: float = UI_TIMEOUT,
                  **options: Any):
    """``page.wait_for_selector`` that says on timeout what it waited for and shows ``logs``."""
    with explained(f"{what} (waited for {selector} on {page.url})", logs):
        return page.wait_for_selector(selector, timeout=timeout, **options)


def on_screen(page, screen: str, timeout: float = UI_TIMEOUT, logs: Iterable[Log] = ()) -> None:
    """Until the kiosk page shows ``screen``; on timeout, which screen it shows and the ``logs``."""
    try:
        page.wait_for_selector(f"html[data-screen={screen}]", timeout=timeout)
    except PlaywrightTimeoutError as exc:
        shown = page.evaluate("document.documentElement.dataset.screen")
        raise TimeoutError(explain(f"the kiosk {page.url} did not show screen {screen} within {timeout / 1000:g} s; "
                                   f"it shows {shown!r}", logs)) from exc
