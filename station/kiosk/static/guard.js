// The kiosk page's own guards, a second wall behind the browser's managed policies
// (provisioning/kiosk_policy.py): no context menu, no text selection or dragging outside text
// fields, nothing dropped onto the page (a dropped file would replace the exam with file://),
// no link opened elsewhere, no zooming, and no keyboard shortcut the kiosk does not use.
// Loaded first, it listens in the capture phase on window, so it sees every event before
// kiosk.js and help.js; what it lets through reaches them unchanged.
//
// Keys the kiosk uses, and so lets through: any character, Backspace, Delete, Enter, Tab, Space,
// the arrows, Home/End, PageUp/PageDown (the ticket keypad, the help panel's text, scrolling the
// reading); the bare modifier keys and an input method's keys; inside a text field also
// Ctrl+A/C/V/X/Z/Y and Ctrl(+Shift)+arrows/Backspace/Delete/Home/End (editing the help text).
// Everything else with Ctrl, Alt or Meta, the function keys, Escape and the browser's own keys
// (BrowserBack, BrowserRefresh, ...) is stopped. Shortcuts the browser keeps for itself (Ctrl+T,
// Ctrl+N, Ctrl+W, Alt+F4) never reach a page: the policies and the kiosk unit handle those.
"use strict";

(function () {
  const PLAIN = new Set(["Backspace", "Delete", "Enter", "Tab", " ", "ArrowLeft", "ArrowRight", "ArrowUp",
    "ArrowDown", "Home", "End", "PageUp", "PageDown", "Shift", "Control", "Alt", "AltGraph", "Meta", "CapsLock",
    "NumLock", "Process", "Dead", "Unidentified", "Compose", "Convert", "NonConvert", "KanaMode", "HangulMode",
    "HanjaMode", "Hiragana", "Katakana", "Eisu", "Zenkaku", "Hankaku", "ZenkakuHankaku"]);
  const FIELD_CTRL = new Set(["a", "c", "v", "x", "z", "y", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown",
    "Backspace", "Delete", "Home", "End"]);

  const editable = (el) => !!el && el.nodeType === 1 && !!el.closest &&
    !!el.closest("textarea, [contenteditable=''], [contenteditable=true], " +
      "input:not([readonly]):not([type=button]):not([type=submit]):not([type=checkbox]):not([type=radio])");

  function allowed(ev) {
    if (ev.isComposing) return true;  // an input method (pinyin) is composing: its keys are its own
    const key = ev.key;
    const altGraph = ev.getModifierState && ev.getModifierState("AltGraph");
    if (!ev.ctrlKey && !ev.altKey && !ev.metaKey) return key.length === 1 || PLAIN.has(key);
    if (altGraph && key.length === 1) return true;  // a character typed with AltGr
    if (PLAIN.has(key) && ["Shift", "Control", "Alt", "AltGraph", "Meta"].includes(key)) return true;
    if (ev.ctrlKey && !ev.altKey && !ev.metaKey && editable(ev.target)) {
      const k = key.length === 1 ? key.toLowerCase() : key;
      return FIELD_CTRL.has(k) && (!ev.shiftKey || k === "z" || k.startsWith("Arrow") || k === "Home" || k === "End");
    }
    return false;
  }

  function stop(ev) {
    ev.preventDefault();
    ev.stopImmediatePropagation();
  }

  window.addEventListener("keydown", (ev) => { if (!allowed(ev)) stop(ev); }, true);
  window.addEventListener("keyup", (ev) => { if (!allowed(ev)) stop(ev); }, true);
  window.addEventListener("contextmenu", stop, true);
  window.addEventListener("selectstart", (ev) => { if (!editable(ev.target)) ev.preventDefault(); }, true);
  window.addEventListener("dragstart", (ev) => { if (!editable(ev.target)) ev.preventDefault(); }, true);
  ["dragenter", "dragover", "drop"].forEach((name) => window.addEventListener(name, (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = "none";
  }, true));
  // Ctrl+wheel zooms; the middle button opens links in tabs and starts autoscroll.
  window.addEventListener("wheel", (ev) => { if (ev.ctrlKey) ev.preventDefault(); }, {capture: true, passive: false});
  window.addEventListener("mousedown", (ev) => { if (ev.button === 1) ev.preventDefault(); }, true);
  window.addEventListener("auxclick", stop, true);
  // A link opens only here, in this page: never in a new tab or window, never as a download.
  window.addEventListener("click", (ev) => {
    const link = ev.target && ev.target.closest ? ev.target.closest("a[href]") : null;
    if (!link) return;
    const elsewhere = (link.target && link.target !== "_self") || link.hasAttribute("download");
    if (elsewhere || ev.ctrlKey || ev.shiftKey || ev.metaKey || ev.altKey || ev.button !== 0) stop(ev);
  }, true);
  window.open = () => null;

  const style = document.createElement("style");
  style.textContent = "html{-webkit-user-select:none;user-select:none;-webkit-touch-callout:none}" +
    "input,textarea,[contenteditable]{-webkit-user-select:text;user-select:text}" +
    "img,a{-webkit-user-drag:none}";
  (document.head || document.documentElement).appendChild(style);
  document.documentElement.dataset.guard = "on";
})();
