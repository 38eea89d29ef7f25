// The kiosk's 求助 (help) panel, the reply notice and the broadcast banners.
// kiosk.js calls KioskHelp.update(state, lang) on every poll and leaves the actions below to this file.
// The quick reasons are enough to ask for help: the kiosk may have no keyboard.
"use strict";

window.KioskHelp = (function () {
  const L = {
    zh: {
      button: "求助", title: "求助", close: "关闭",
      hint: "请选择遇到的问题，监考老师会尽快回复。如需补充说明，可在下方输入（可选）。",
      reasons: {device: "设备故障", network: "网络/上传问题", login: "身份/登录问题", other: "其他"},
      text: "补充说明（可选）", send: "发送求助", choose: "请先选择问题类型",
      sending: "发送中…", sent: "已发送，请稍候，监考老师会尽快回复。", failed: "发送失败，请举手示意监考老师",
      you: "我", proctor: "监考老师", empty: "还没有消息", pending: "等待发送",
      reply_notice: "监考老师回复了您的求助：", open: "查看",
      notice: "考场通知", ack: "我知道了",
    },
    en: {
      button: "Help", title: "Help", close: "Close",
      hint: "Choose what is wrong; a proctor will answer soon. You may add a few words below (optional).",
      reasons: {device: "Device problem", network: "Network / upload", login: "Login / identity", other: "Other"},
      text: "Details (optional)", send: "Ask for help", choose: "Choose what is wrong first",
      sending: "Sending…", sent: "Sent. A proctor will answer soon.", failed: "Could not send; raise your hand",
      you: "Me", proctor: "Proctor", empty: "No messages yet", pending: "waiting to send",
      reply_notice: "A proctor answered your request: ", open: "Open",
      notice: "Notice", ack: "I understand",
    },
  };
  const ACTIONS = new Set(["help", "help_close", "help_reason", "help_send", "help_toast_close", "ack_broadcast"]);
  const $ = (sel, root = document) => root.querySelector(sel);
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const hhmm = (ts) => new Date(ts * 1000).toLocaleTimeString("zh-CN", {hour12: false, hour: "2-digit", minute: "2-digit"});

  let lang = "zh";
  let builtFor = null;       // language the panel was built in
  let reason = null;         // the quick reason chosen
  let status = "";           // "", "sending", "sent", "failed", "choose"
  let historyKey = null;
  let bannersKey = null;
  let toastFor = null;       // the reply the toast was built for (language and id)
  let toastId = 0;           // the reply id the toast shows
  let dismissed = 0;         // the reply id whose toast the candidate closed
  let seenSent = 0;          // the reply id last reported as seen
  let state = null;
  let posting = false;       // the kiosk has not answered the last send yet
  const acked = new Set();   // broadcasts acknowledged here (hidden before the next poll says so)

  const t = (key) => L[lang][key];
  const panel = () => $("#help-panel");
  const isOpen = () => !panel().hidden;

  function build() {
    builtFor = lang;
    historyKey = null;
    const typed = $("#help-text") ? $("#help-text").value : "";
    panel().innerHTML = `
      <header><h2>${t("title")}</h2><button type="button" class="help-close" data-action="help_close">${t("close")} ✕</button></header>
      <ol class="help-history" data-live="help-history"></ol>
      <p class="hint">${t("hint")}</p>
      <div class="help-reasons">${Object.entries(t("reasons")).map(([key, label]) =>
        `<button type="button" data-action="help_reason" data-reason="${key}" aria-pressed="${key === reason}">${esc(label)}</button>`).join("")}</div>
      <label class="help-text">${t("text")}<input id="help-text" data-field="help-text" maxlength="500" autocomplete="off"></label>
      <div class="help-send-row"><button type="button" class="primary big" data-action="help_send">${t("send")}</button>
      <p class="help-status" data-live="help-status" role="status"></p></div>`;
    $("#help-text").value = typed;
    showStatus();
  }

  function showStatus() {
    const el = $("[data-live=help-status]");
    if (!el) return;
    el.textContent = status ? t(status) : "";
    el.dataset.status = status;
  }

  function renderHistory(m) {
    const list = $("[data-live=help-history]");
    if (!list) return;
    const key = `${lang}|` + m.thread.map((x) => `${x.id ?? "p" + x.local_id}`).join(",");
    if (key === historyKey) return;
    historyKey = key;
    list.innerHTML = m.thread.length ? m.thread.map((x) => `
      <li class="help-msg ${x.kind === "reply" ? "from-staff" : "from-me"}" data-kind="${x.kind}" data-message="${x.id ?? ""}" data-pending="${x.pending}">
        <span class="meta">${x.kind === "reply" ? t("proctor") : t("you")} · ${hhmm(x.at)}${x.pending ? " · " + t("pending") : ""}</span>
        ${x.reason ? `<b class="reason">${esc(t("reasons")[x.reason] ?? x.reason)}</b>` : ""}
        ${x.text ? `<span class="text">${esc(x.text)}</span>` : ""}</li>`).join("")
      : `<li class="help-empty">${t("empty")}</li>`;
    list.scrollTop = list.scrollHeight;
  }

  function renderBanners(m) {
    const box = $("#broadcasts");
    const shown = m.broadcasts.filter((b) => !acked.has(b.id));
    const key = `${lang}|` + shown.map((b) => b.id).join(",");
    if (key === bannersKey) return;
    bannersKey = key;
    box.innerHTML = shown.map((b) => `
      <div class="broadcast" data-broadcast="${b.id}">
        <span class="label">${t("notice")}</span><span class="text" data-field="broadcast-text">${esc(b.text)}</span>
        <span class="time">${hhmm(b.at)}</span>
        <button type="button" class="primary" data-action="ack_broadcast" data-id="${b.id}">${t("ack")}</button></div>`).join("");
  }

  function renderToast(m) {
    const toast = $("#help-toast");
    const last = m.thread.filter((x) => x.kind === "reply").pop();
    if (!last || isOpen() || m.unread === 0 || dismissed === last.id) { toast.hidden = true; return; }
    toastId = last.id;
    if (toastFor !== `${lang}|${last.id}`) {
      toastFor = `${lang}|${last.id}`;
      toast.innerHTML = `<b>${t("reply_notice")}</b><span class="text" data-field="reply-text">${esc(last.text)}</span>
        <button type="button" class="primary" data-action="help">${t("open")}</button>
        <button type="button" data-action="help_toast_close">✕</button>`;
    }
    toast.hidden = false;
  }

  function update(s, currentLang) {
    state = s;
    lang = currentLang === "en" ? "en" : "zh";
    const m = s.messages || {thread: [], unread: 0, last_reply: 0, broadcasts: [], sending: false};
    $("[data-live=help-label]").textContent = t("button");
    const unread = $("[data-live=help-unread]");
    unread.textContent = m.unread ? String(m.unread) : "";
    $("#help-button").classList.toggle("has-reply", m.unread > 0);
    if (isOpen()) {
      if (builtFor !== lang) build();
      renderHistory(m);
      if (m.last_reply > seenSent) markSeen(m.last_reply);
      if (status === "sending" && !posting && !m.sending) { status = "sent"; showStatus(); }
    }
    renderToast(m);
    renderBanners(m);
  }

  function markSeen(upto) {
    seenSent = upto;
    fetch("/api/messages/seen", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({upto})});
  }

  function open() {
    if (!posting) status = "";  // a new visit: no stale "sent"
    panel().hidden = false;
    build();
    $("#help-toast").hidden = true;
    if (state) update(state, lang);
  }

  async function sendHelp() {
    if (!reason) { status = "choose"; showStatus(); return; }
    status = "sending";
    showStatus();
    posting = true;
    try {
      const r = await fetch("/api/help", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({reason, text: $("#help-text").value})});
      if (!r.ok) throw new Error(String(r.status));
      $("#help-text").value = "";
      reason = null;
      panel().querySelectorAll("[data-action=help_reason]").forEach((b) => b.setAttribute("aria-pressed", "false"));
    } catch (e) {
      status = "failed";
      showStatus();
    } finally {
      posting = false;
    }
  }

  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-action]");
    if (!btn || !ACTIONS.has(btn.dataset.action)) return;
    const action = btn.dataset.action;
    if (action === "help") { if (isOpen()) panel().hidden = true; else open(); return; }
    if (action === "help_close") { panel().hidden = true; return; }
    if (action === "help_toast_close") { dismissed = toastId; $("#help-toast").hidden = true; return; }
    if (action === "help_reason") {
      reason = btn.dataset.reason;
      panel().querySelectorAll("[data-action=help_reason]").forEach((b) => b.setAttribute("aria-pressed", String(b === btn)));
      if (status === "choose") { status = ""; showStatus(); }
      return;
    }
    if (action === "help_send") { sendHelp(); return; }
    if (action === "ack_broadcast") {
      const id = Number(btn.dataset.id);
      acked.add(id);
      btn.closest("[data-broadcast]")?.remove();
      bannersKey = null;
      fetch(`/api/messages/${encodeURIComponent(id)}/ack`, {method: "POST"})
        .then((r) => { if (!r.ok && r.status !== 404) throw new Error(String(r.status)); })
        .catch(() => { acked.delete(id); bannersKey = null; });  // not taken: the banner comes back
    }
  });

  return {handles: (action) => ACTIONS.has(action), update};
})();
