"""The demo centre as the end-to-end tests run it: every process real, every port free, and the
screenshots they keep (tests/artifacts/e2e/)."""
from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from provisioning.demo import DemoCentre, Ports, free_port

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "e2e"


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


def on_screen(page, screen: str, timeout: float = 20_000) -> None:
    page.wait_for_selector(f"html[data-screen={screen}]", timeout=timeout)
