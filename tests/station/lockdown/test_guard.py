"""The kiosk page's own guards (station/kiosk/static/guard.js) stop what the kiosk does not use
and let through what it does: the ticket keypad's keys, typing (and editing) the help text.
Checked in headless Chromium on the real kiosk page, with keys sent through the browser's input
(Playwright's keyboard), each key's fate read by a listener behind the guard."""
from __future__ import annotations

import pytest

from station.kiosk.app import serve_kiosk
from station.runtime.runner import Runtime
from tests.services import free_port
from tests.station.test_kiosk_requests import station_settings

# Records each keydown that gets past the guard (capture phase on window) to the page's own handlers;
# the bare modifier keys pass by design (an input method needs them), so they are not recorded.
RECORD = """() => { window.seenKeys = [];
  const bare = ["Control", "Shift", "Alt", "Meta", "AltGraph"];
  document.addEventListener("keydown", (ev) => { if (!bare.includes(ev.key)) window.seenKeys.push(ev.key); }, true);
}"""


@pytest.fixture
def page(tmp_path, chromium):
    port = free_port()
    runtime = Runtime(station_settings(tmp_path, port))
    server = serve_kiosk(runtime.kiosk, "127.0.0.1", port)
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("html[data-guard=on][data-screen=identify] #ticket")
        page.evaluate(RECORD)
        yield page
    finally:
        page.close()
        server.shutdown()
        runtime.stop()


def test_the_keypad_keys_still_reach_the_kiosk(page) -> None:
    page.keyboard.type("2024A7")
    page.keyboard.press("Backspace")
    assert page.input_value("#ticket") == "2024A"


@pytest.mark.parametrize("combo", ["Control+t", "Control+n", "Control+w", "Control+p", "Control+o", "Control+s",
                                   "Control+u", "F12", "Control+Shift+I", "Control+Shift+J", "F5", "Control+r",
                                   "Alt+ArrowLeft", "Control+l", "Escape", "Control+Equal", "Meta+a"])
def test_shortcuts_the_kiosk_does_not_use_are_stopped(page, combo) -> None:
    page.keyboard.press(combo)
    assert page.evaluate("window.seenKeys") == [], f"{combo} reached the page's own handlers"
    assert page.input_value("#ticket") == "", f"{combo} typed into the ticket"


def test_the_help_text_can_be_typed_and_edited(page) -> None:
    page.click("[data-action=help]")
    field = page.locator("#help-text")
    field.click()
    page.keyboard.type("摄像头 black")
    page.keyboard.press("Control+a")
    page.keyboard.type("camera off")
    page.keyboard.press("Control+ArrowLeft")
    page.keyboard.press("Backspace")
    assert field.input_value() == "cameraoff"
    assert page.input_value("#ticket") == "", "typing help text is not ticket entry"


def test_menus_selection_and_drops_are_refused(page) -> None:
    refused = page.evaluate("""() => {
        const fire = (ev) => !document.body.dispatchEvent(ev);
        return {
          contextmenu: fire(new MouseEvent("contextmenu", {bubbles: true, cancelable: true})),
          selectstart: fire(new Event("selectstart", {bubbles: true, cancelable: true})),
          drop: fire(new DragEvent("drop", {bubbles: true, cancelable: true})),
          dragover: fire(new DragEvent("dragover", {bubbles: true, cancelable: true})),
          userSelect: getComputedStyle(document.body).userSelect,
          open: window.open("about:blank") === null,
        };
    }""")
    assert refused == {"contextmenu": True, "selectstart": True, "drop": True, "dragover": True,
                       "userSelect": "none", "open": True}
