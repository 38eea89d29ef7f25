// Dashboard: help requests (求助) with their history, replies, resolve; broadcasts to a sitting.
// Polls /staff/api/messages every second. A new help request beeps (WebAudio; silent if the browser
// refuses sound before the first click) and marks the station's tile (helpBadge, used by the tiles).
"use strict";
(function () {
  const root = document.getElementById("help");
  if (!root) return;
  const CAN_CHAT = root.dataset.canChat === "true";
  const CSRF = root.dataset.csrf;
  const POLL = root.dataset.poll;
  const REASONS = {device: "设备故障 Device problem", network: "网络/上传问题 Network / upload",
                   login: "身份/登录问题 Login", other: "其他 Other"};
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const hhmm = (iso) => new Date(iso).toLocaleTimeString("zh-CN", {hour12: false});
  let waitingStations = new Set();   // stations whose candidate waits for an answer
  let openStations = new Set();      // stations with an open thread
  let lastHelpId = null;             // highest help message id seen (null: not loaded yet)
  let audio = null;
  const baseTitle = document.title;

  // The station tiles call this while they render (dashboard.html).
  window.helpBadge = (stationId) => waitingStations.has(stationId)
    ? `<div class="help-alert" data-help-alert="${esc(stationId)}">求助 Help!</div>`
    : (openStations.has(stationId) ? `<div class="help-open" data-help-open="${esc(stationId)}">求助处理中 Help open</div>` : "");

  window.helpWaiting = (stationId) => waitingStations.has(stationId);

  function markTiles() {
    document.querySelectorAll("[data-station]").forEach((tile) => {
      tile.classList.toggle("help-waiting", waitingStations.has(tile.dataset.station));
    });
  }

  function beep() {
    if (window.liveAlerts) { root.dataset.beep = window.liveAlerts.beep(); return; }  // the dashboard's sound and mute
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { root.dataset.beep = "unsupported"; return; }
    try {
      audio = audio || new Ctx();
      if (audio.state !== "running") audio.resume().catch(() => {});
      if (audio.state !== "running") { root.dataset.beep = "blocked"; return; }  // no click on the page yet
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.3, audio.currentTime + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.35);
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.4);
      root.dataset.beep = "played";
    } catch (e) {
      root.dataset.beep = "blocked";
    }
  }
  // Browsers allow sound after the first gesture: unlock the audio context then.
  document.addEventListener("pointerdown", () => {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try { audio = audio || new Ctx(); audio.resume().catch(() => {}); } catch (e) { /* no sound then */ }
  }, {once: true});

  function messageHtml(m) {
    const who = m.kind === "help" ? "考生 Candidate" : `监考 ${esc(m.author)}`;
    return `<li class="msg msg-${esc(m.kind)}" data-message="${m.id}" data-kind="${esc(m.kind)}">
      <span class="msg-meta">${hhmm(m.at)} · ${who}</span>
      ${m.reason ? `<span class="reason" data-field="reason">${esc(REASONS[m.reason] || m.reason)}</span>` : ""}
      ${m.text ? `<span class="msg-text" data-field="text">${esc(m.text)}</span>` : ""}${pushHtml(m.push)}</li>`;
  }

  // What became of a reply's or broadcast's push to the stations (the worker sends it after the request).
  const PUSH = {
    sending: "发送中 · sending…",
    delivered: "已送达 · delivered",
    not_delivered: "未送达，考位会自动获取 · not delivered, the station will ask",
  };

  function pushHtml(push) {
    return push ? ` <span class="push push-${esc(push)}" data-field="push">${PUSH[push] || esc(push)}</span>` : "";
  }

  function threadCard(t) {
    const card = document.createElement("article");
    card.className = "help-thread";
    card.dataset.thread = t.id;
    card.innerHTML = `
      <header><b>${esc(t.station_name)}</b>
        <span class="muted">${t.station_name.includes(t.station) ? "" : esc(t.station) + " · "}${t.seat ? "座位 Seat " + esc(t.seat) : ""}</span>
        <span class="muted" data-field="lot"></span> <span class="badge" data-field="status"></span></header>
      <ol class="history" data-field="history"></ol>
      ${CAN_CHAT ? `<form class="resolve" id="resolve-${t.id}" method="post" action="/staff/help/${t.id}/resolve" data-form="resolve">
          <input type="hidden" name="csrf_token" value="${esc(CSRF)}"></form>
        <form class="reply" method="post" action="/staff/help/${t.id}/reply" data-form="reply">
          <input type="hidden" name="csrf_token" value="${esc(CSRF)}">
          <textarea name="text" maxlength="500" rows="2" required placeholder="回复考生 · Reply to the candidate"></textarea>
          <span class="buttons"><button class="primary" type="submit" data-action="reply">回复 Reply</button>
          <button type="submit" form="resolve-${t.id}" data-action="resolve" title="标记为已解决 Mark resolved">已解决 Resolved</button></span>
        </form>` : ""}
      <p class="muted" data-field="result" role="status"></p>`;
    return card;
  }

  function renderThreads(threads) {
    const box = document.getElementById("help-threads");
    const seen = new Set();
    if (!threads.length) { box.innerHTML = '<p class="muted">暂无求助 · No help requests</p>'; return; }
    box.querySelector(":scope > p.muted")?.remove();
    threads.forEach((t, index) => {
      seen.add(String(t.id));
      let card = box.querySelector(`[data-thread="${t.id}"]`);
      if (!card) card = threadCard(t);
      if (box.children[index] !== card) box.insertBefore(card, box.children[index] || null);
      card.dataset.status = t.status;
      card.dataset.waiting = t.waiting;
      card.setAttribute("data-thread-station", t.station);
      card.classList.toggle("waiting", t.waiting);
      card.classList.toggle("resolved", t.status === "resolved");
      card.querySelector("[data-field=lot]").textContent = t.lot != null ? `抽签号 Lot ${t.lot}` : (t.attempt ? "" : "（未登录 no candidate yet）");
      card.querySelector("[data-field=status]").textContent =
        t.status === "resolved" ? "已解决 resolved" : (t.waiting ? "待回复 waiting" : "已回复 answered");
      const history = card.querySelector("[data-field=history]");
      const ids = t.messages.map((m) => `${m.id}:${m.push || ""}`).join(",");
      if (history.dataset.ids !== ids) {
        history.dataset.ids = ids;
        history.innerHTML = t.messages.map(messageHtml).join("");
        history.scrollTop = history.scrollHeight;
      }
      const resolveButton = card.querySelector("[data-action=resolve]");
      if (resolveButton) resolveButton.hidden = t.status === "resolved";
    });
    [...box.querySelectorAll("[data-thread]")].forEach((card) => { if (!seen.has(card.dataset.thread)) card.remove(); });
  }

  function renderSittings(sittings) {
    const select = document.querySelector("#broadcast-form select[name=sitting]");
    if (!select) return;
    const key = sittings.map((s) => `${s.id}:${s.stations}`).join(",");
    if (select.dataset.key === key) return;
    select.dataset.key = key;
    const chosen = select.value;
    select.innerHTML = sittings.map((s) => `<option value="${esc(s.id)}">${esc(s.name)} · ${hhmm(s.starts_at)} · ${s.stations} 考位 stations</option>`).join("");
    if (chosen) select.value = chosen;
  }

  function renderBroadcasts(list) {
    const box = document.getElementById("broadcasts");
    const key = list.map((b) => `${b.id}:${b.acknowledged.length}:${b.push || ""}`).join(",");
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.innerHTML = list.map((b) => `<li data-broadcast="${b.id}" data-acknowledged="${b.acknowledged.length}" data-stations="${b.stations.length}">
      <span class="msg-meta">${hhmm(b.at)} · ${esc(b.author)} → ${esc(b.sitting_name || b.sitting)}</span> <span class="msg-text">${esc(b.text)}</span>
      <span class="ack" data-field="acks" title="${esc(b.acknowledged.join(", "))}">已确认 Acknowledged ${b.acknowledged.length}/${b.stations.length}</span>${pushHtml(b.push)}</li>`).join("");
  }

  async function refresh() {
    let data;
    try {
      const r = await fetch(POLL, {cache: "no-store"});
      if (!r.ok) return;
      data = await r.json();
    } catch (e) { return; }
    const open = data.threads.filter((t) => t.status === "open");
    waitingStations = new Set(open.filter((t) => t.waiting).map((t) => t.station));
    openStations = new Set(open.map((t) => t.station));
    const count = document.getElementById("help-count");
    count.textContent = waitingStations.size ? `${waitingStations.size} 待回复 waiting` : "";
    count.dataset.count = waitingStations.size;
    document.title = waitingStations.size ? `(${waitingStations.size}) 求助 · ${baseTitle}` : baseTitle;
    if (lastHelpId !== null && data.last_help_id > lastHelpId) beep();
    lastHelpId = data.last_help_id;
    renderThreads(data.threads);
    renderSittings(data.sittings);
    renderBroadcasts(data.broadcasts);
    markTiles();
  }

  async function submit(form, result) {
    // The resolve button sits in the reply row and names its form with form="resolve-<id>".
    const button = form.querySelector("button[type=submit]") || document.querySelector(`button[form="${form.id}"]`);
    if (button) button.disabled = true;
    try {
      const r = await fetch(form.action, {method: "POST", body: new FormData(form), headers: {Accept: "application/json"}});
      const body = await r.json().catch(() => ({}));
      if (!r.ok) { if (result) result.textContent = `✗ ${body.error || r.status}`; return false; }
      if (result) result.textContent = body.push === "not_delivered" ? "已保存，考位稍后自动获取 · Saved; the station will fetch it" : "";
      return body;
    } finally {
      if (button) button.disabled = false;
    }
  }

  document.addEventListener("submit", async (ev) => {
    const form = ev.target;
    const kind = form.dataset.form || (form.id === "broadcast-form" ? "broadcast" : null);
    if (!kind) return;
    ev.preventDefault();
    if (kind === "broadcast") {
      const result = form.querySelector("[data-field=broadcast-result]");
      const body = await submit(form, result);
      if (body) {
        form.querySelector("textarea").value = "";
        result.textContent = `✓ 已发送到 ${body.stations.length} 个考位 · Sent to ${body.stations.length} stations`;
      }
    } else {
      const card = form.closest("[data-thread]");
      const body = await submit(form, card.querySelector("[data-field=result]"));
      if (body && kind === "reply") form.querySelector("textarea").value = "";
    }
    refresh();
  });

  refresh();
  setInterval(refresh, 1000);
  setInterval(markTiles, 250);  // the tiles are redrawn every second by the dashboard
})();
