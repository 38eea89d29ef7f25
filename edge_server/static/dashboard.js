// The live room: one tile per station, fed by server-sent events (/staff/api/stream), falling back to
// polling /staff/api/stations while the stream is unavailable. Alerts (help, flags, offline, failed
// face login) colour the tile and beep (Web Audio, after the first click; a mute toggle). Filters:
// all / alerts / offline / by state, and a search by station, seat or lot. A wall view fits 100 tiles
// on a 1920x1080 screen; a room of 1,000 stays responsive (tiles are redrawn in batches, see draw).
"use strict";
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const grid = document.getElementById("stations");
  const STREAM = root.dataset.stream, POLL = root.dataset.poll, CSRF = root.dataset.csrf;
  const CAN_REVOKE = root.dataset.canRevoke === "true";
  const STATE_NAMES = {identify: "身份识别", face_login: "人脸登录", manual_review: "人工审核中", read_flow: "阅读流程",
    read_pledge: "诚信承诺书", read_notice: "考试须知", draw_lot: "抽签", device_check: "设备检测", info_confirm: "信息确认",
    waiting: "候考", answering: "答题中", resume: "中断待继续", uploading: "上传中", done: "已完成", entry_closed: "已截止",
    idle: "空闲", revoked: "已吊销"};
  const FLAG_NAMES = {no_face: "无人脸", several_faces: "多人", face_mismatch: "人脸不符", face_covered: "遮挡",
    camera_lost: "摄像头断开", mic_silent: "无声音", loud_noise: "噪声", focus_lost: "离开页面"};
  const ALERT_NAMES = {help: "求助 Help", flag: "异常 Flag", offline: "离线 Offline", face: "人脸未通过 Face login"};
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const mmss = (s) => { if (s == null) return "—"; s = Math.max(0, Math.round(s));
    return String(Math.floor(s / 60)).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0"); };

  const tiles = new Map();       // station id -> tile JSON
  const faceStations = new Set(); // stations with a failing face login or a pending review
  let alertKeys = null;          // "station:reason" seen last time (null: first render, no beep)
  let filter = "all", stateFilter = "";

  // --- alerts --------------------------------------------------------------------------------
  function alertsOf(t) {
    const out = [];
    if (t.revoked) return out;
    if (window.helpWaiting && window.helpWaiting(t.id)) out.push("help");
    if (t.online && (t.flags || []).length) out.push("flag");
    if (!t.online && t.last_seen) out.push("offline");
    if (faceStations.has(t.id)) out.push("face");
    return out;
  }

  // --- sound -----------------------------------------------------------------------------------
  const soundBtn = document.getElementById("sound");
  let audio = null, lastBeep = 0;
  let muted = localStorage.getItem("examkiosk.muted") === "1";
  function soundState() {
    const s = muted ? "muted" : (audio && audio.state === "running" ? "on" : "locked");
    root.dataset.sound = s;
    soundBtn.textContent = {muted: "已静音 Muted", on: "声音开 Sound on", locked: "点击启用声音 Click to enable sound"}[s];
    soundBtn.classList.toggle("attention", s === "locked");
  }
  function unlock() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try { audio = audio || new Ctx(); audio.resume().then(soundState, soundState); } catch (e) { /* no sound */ }
  }
  // Browsers allow sound after a gesture: the first click anywhere unlocks it (on the sound button,
  // that click only unlocks; the next one mutes).
  function firstGesture(e) {
    if (e.target.closest && e.target.closest("#sound")) return;
    document.removeEventListener("pointerdown", firstGesture);
    unlock();
  }
  document.addEventListener("pointerdown", firstGesture);
  soundBtn.addEventListener("click", () => {
    if (root.dataset.sound === "locked") { document.removeEventListener("pointerdown", firstGesture); unlock(); return; }
    muted = !muted;
    localStorage.setItem("examkiosk.muted", muted ? "1" : "0");
    soundState();
  });
  // One beep for any number of alerts at once; also used by the help panel (messages.js).
  function beep() {
    if (muted) { root.dataset.beep = "muted"; return "muted"; }
    if (!audio || audio.state !== "running") { root.dataset.beep = "blocked"; return "blocked"; }
    const now = Date.now();
    if (now - lastBeep < 1000) return "played";
    lastBeep = now;
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = "square"; osc.frequency.value = 988;
    gain.gain.setValueAtTime(0.0001, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.25, audio.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.45);
    osc.connect(gain).connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.5);
    root.dataset.beeps = String(Number(root.dataset.beeps || 0) + 1);
    root.dataset.beep = "played";
    return "played";
  }

  // --- tiles -----------------------------------------------------------------------------------
  function bodyHtml(t, alerts) {
    const badge = t.revoked ? "已吊销 revoked" : (t.online ? "在线 online" : "离线 offline");
    const mic = Math.round(Math.min(1, Math.max(0, t.mic_level || 0)) * 100);
    return `<div class="tile-head"><b data-field="name">${esc(t.name)}</b>${t.seat ? `<span class="seat">${esc(t.seat)}</span>` : ""}
        <span class="badge" data-field="online">${badge}</span></div>
      ${window.helpBadge ? window.helpBadge(t.id) : ""}
      <div class="line"><b data-field="state">${esc(STATE_NAMES[t.state] || t.state || "—")}</b>
        · 剩 <b data-field="time_left">${mmss(t.time_left)}</b></div>
      <div class="line">签 <b data-field="lot">${esc(t.lot ?? "—")}</b> · 题 <b data-field="question">${esc(t.question ?? "—")}</b>
        ${t.version ? `<span class="muted" title="软件 Software ${esc(t.version)} · 配置 Config ${esc(t.config || "—")}">v${esc(t.version)}</span>` : ""}</div>
      <div class="meter" title="麦克风 Mic"><span data-field="mic" style="width:${mic}%"></span></div>
      <div class="line muted" data-field="health" title="待传段 upload backlog · 剩余磁盘 disk free · 与服务器时差 clock offset">待传 ${esc(t.backlog ?? "—")} · 盘 ${esc(t.disk_free_mb ?? "—")}MB · 时差 ${esc(t.clock_offset_ms ?? "—")}ms</div>
      ${(t.flags || []).length ? `<div class="flags" data-field="flags">${t.flags.map((f) => `<span class="flag">${esc(FLAG_NAMES[f] || f)}</span>`).join(" ")}</div>` : ""}
      ${alerts.length ? `<div class="alerts" data-field="alerts">${alerts.map((a) => `<span class="alert-tag" data-alert="${a}">${ALERT_NAMES[a]}</span>`).join(" ")}</div>` : ""}
      ${CAN_REVOKE && !t.revoked ? `<form method="post" action="/staff/stations/${encodeURIComponent(t.id)}/revoke" class="revoke" onsubmit="return confirm('停用考位 ${esc(t.id)}？')">
        <input type="hidden" name="csrf_token" value="${esc(CSRF)}"><button data-action="revoke">停用 Revoke</button></form>` : ""}`;
  }

  const els = new Map();        // station id -> its tile element
  function renderTile(t, alerts) {
    let el = els.get(t.id);
    if (!el) {
      el = document.createElement("div");
      el.className = "tile";
      el.dataset.station = t.id;
      el.innerHTML = `<div class="snap"><img alt="" data-snapshot hidden></div><div class="tile-body"></div>`;
      grid.appendChild(el);
      els.set(t.id, el);
    }
    el.classList.toggle("online", !!t.online);
    el.classList.toggle("offline", !t.online);
    el.classList.toggle("revoked", !!t.revoked);
    el.classList.toggle("alerting", alerts.length > 0);
    el.dataset.online = String(!!t.online);
    el.dataset.state = t.revoked ? "revoked" : (t.state || "");
    el.dataset.revoked = String(!!t.revoked);
    el.dataset.alerts = alerts.join(" ");
    const html = bodyHtml(t, alerts);
    const body = el.querySelector(".tile-body");
    if (body.dataset.html !== html) { body.innerHTML = html; body.dataset.html = html; }
    const img = el.querySelector("img[data-snapshot]");
    if (t.snapshot_at && img.dataset.at !== String(t.snapshot_at)) {
      img.dataset.at = String(t.snapshot_at);
      img.src = `/staff/stations/${encodeURIComponent(t.id)}/snapshot.jpg?v=${encodeURIComponent(t.snapshot_at)}`;
      img.hidden = false;
    }
    return el;
  }

  // A room of a thousand stations sends a thousand tiles a second: a tile update only marks its
  // station, and one pass at most every UPDATE_MS redraws the marked tiles (and those whose alerts
  // changed); counts, filters and the search are re-applied to all, which touches no markup.
  // Off-screen tiles cost no layout or paint (content-visibility in dashboard.css).
  const UPDATE_MS = 100;
  const dirty = new Set();
  let sorted = [], reorder = true, pending = null;
  function changed(id) {
    dirty.add(id);
    if (!tiles.has(id) || !els.has(id)) reorder = true;
    if (!pending) pending = setTimeout(() => { pending = null; draw(false); }, UPDATE_MS);
  }
  function matches(t, q) {
    if (!q) return true;
    return [t.id, t.name, t.seat].some((v) => String(v ?? "").toLowerCase().includes(q)) || String(t.lot ?? "") === q;
  }
  function render() { draw(true); }
  function draw(all) {
    const keys = new Set();
    const counts = {all: 0, alerts: 0, offline: 0, shown: 0};
    const states = new Set();
    if (reorder || all) {
      const next = [...tiles.keys()].sort((a, b) => a.localeCompare(b, "en", {numeric: true}));
      if (next.join("\n") !== sorted.join("\n")) reorder = true;
      sorted = next;
    }
    const q = search.value.trim().toLowerCase();
    sorted.forEach((id, i) => {
      const t = tiles.get(id);
      const alerts = alertsOf(t);
      alerts.forEach((a) => keys.add(`${t.id}:${a}`));
      let el = els.get(id);
      const help = window.helpBadge ? window.helpBadge(t.id) : "";
      if (all || !el || dirty.has(id) || el.dataset.alerts !== alerts.join(" ") || el.dataset.help !== help) {
        el = renderTile(t, alerts);
        el.dataset.help = help;
      }
      if (reorder && grid.children[i] !== el) grid.insertBefore(el, grid.children[i] || null);
      counts.all++;
      if (alerts.length) counts.alerts++;
      if (!t.online && !t.revoked) counts.offline++;
      if (el.dataset.state) states.add(el.dataset.state);
      const hide = !(filter === "all" || (filter === "alerts" && alerts.length) || (filter === "offline" && !t.online && !t.revoked))
        || (stateFilter && el.dataset.state !== stateFilter) || !matches(t, q);
      if (el.hidden !== hide) el.hidden = hide;
      if (!hide) counts.shown++;
    });
    dirty.clear();
    reorder = false;
    grid.classList.toggle("dense", counts.all > 24 || document.body.classList.contains("wall"));
    for (const [k, v] of Object.entries(counts)) {
      const out = document.querySelector(`[data-count="${k}"]`);
      if (out && out.textContent !== String(v)) out.textContent = v;
    }
    const sel = document.getElementById("state-filter");
    const wanted = ["", ...[...states].sort()];
    if ([...sel.options].map((o) => o.value).join() !== wanted.join()) {
      sel.innerHTML = wanted.map((s) => `<option value="${esc(s)}">${s ? esc(STATE_NAMES[s] || s) : "全部状态 Any state"}</option>`).join("");
      sel.value = wanted.includes(stateFilter) ? stateFilter : "";
    }
    if (!tiles.size) grid.dataset.empty = "true"; else delete grid.dataset.empty;
    if (alertKeys !== null && [...keys].some((k) => !alertKeys.has(k))) beep();
    alertKeys = keys;
    root.dataset.alerts = String(counts.alerts);
    root.dataset.drawn = String(Date.now());
    document.title = (counts.alerts ? `(${counts.alerts}) ` : "") + baseTitle;
  }
  const baseTitle = document.title;

  // --- filters and wall view -------------------------------------------------------------------
  document.querySelectorAll("[data-filter]").forEach((b) => b.addEventListener("click", () => {
    filter = b.dataset.filter;
    document.querySelectorAll("[data-filter]").forEach((x) => x.classList.toggle("active", x === b));
    render();
  }));
  document.getElementById("state-filter").addEventListener("change", (e) => { stateFilter = e.target.value; render(); });
  const search = document.getElementById("search");
  search.addEventListener("input", () => render());
  const wallBtn = document.getElementById("wall");
  function setWall(on) {
    document.body.classList.toggle("wall", on);
    localStorage.setItem("examkiosk.wall", on ? "1" : "0");
    wallBtn.textContent = on ? "退出墙面 Exit wall view" : "墙面模式 Wall view";
    render();
  }
  wallBtn.addEventListener("click", () => setWall(!document.body.classList.contains("wall")));

  // --- the feed --------------------------------------------------------------------------------
  const clock = document.getElementById("clock");
  const link = document.getElementById("link-state");
  function setLink(mode) {
    root.dataset.link = mode;
    link.textContent = {live: "● 实时 Live", connecting: "○ 连接中 Connecting", polling: "◐ 轮询 Polling (live link down)"}[mode];
  }
  // The edge's MQTT bridge behind: what the tiles show is that many seconds old.
  const late = document.getElementById("bridge-late");
  function showBridge(b) {
    late.hidden = !b.late;
    root.dataset.bridge = b.late ? "late" : "ok";
    if (b.late) late.textContent = `状态更新延迟 ${Math.round(b.waited_s)} 秒（${b.pending} 条待写入）· ` +
      `Station updates are ${Math.round(b.waited_s)} s late (${b.pending} waiting): the tiles may be behind`;
  }
  function showTime(ts) { clock.textContent = new Date(ts * 1000).toLocaleTimeString("zh-CN", {hour12: false}); }
  function replaceAll(list) {
    tiles.clear();
    list.forEach((t) => tiles.set(t.id, t));
    for (const [id, el] of els) if (!tiles.has(id)) { el.remove(); els.delete(id); }
    render();
  }

  let source = null, pollTimer = null, retryTimer = null;
  async function poll() {
    try {
      const r = await fetch(POLL, {headers: {Accept: "application/json"}});
      if (!r.ok) return;
      const data = await r.json();
      showTime(data.server_time);
      replaceAll(data.stations);
    } catch (e) { /* the next poll tries again */ }
  }
  function fallBack() {
    setLink("polling");
    if (!pollTimer) { poll(); pollTimer = setInterval(poll, 2000); }
    if (!retryTimer) retryTimer = setTimeout(() => { retryTimer = null; connect(); }, 30000);
  }
  function connect() {
    if (!window.EventSource) { fallBack(); return; }
    setLink("connecting");
    source = new EventSource(STREAM);
    source.addEventListener("stations", (e) => {
      const data = JSON.parse(e.data);
      root.dataset.connects = String(Number(root.dataset.connects || 0) + 1);
      if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
      setLink("live");
      showTime(data.server_time);
      replaceAll(data.stations);
    });
    source.addEventListener("tile", (e) => { const t = JSON.parse(e.data); changed(t.id); tiles.set(t.id, t); });
    source.addEventListener("snapshot", (e) => {
      const s = JSON.parse(e.data);
      const t = tiles.get(s.station);
      if (t) { tiles.set(s.station, Object.assign({}, t, {snapshot_at: s.at})); changed(s.station); }
    });
    source.addEventListener("bridge", (e) => showBridge(JSON.parse(e.data)));
    source.addEventListener("heartbeat", (e) => showTime(JSON.parse(e.data).server_time));
    source.onerror = () => {
      // EventSource retries a dropped stream itself; a refused one (e.g. 503, Redis away) is CLOSED.
      if (source.readyState === EventSource.CLOSED) { source.close(); fallBack(); } else setLink("connecting");
    };
  }

  window.liveTiles = {
    setFaceStations(ids) {
      const next = [...new Set(ids)].sort().join();
      if ([...faceStations].sort().join() === next) return;
      faceStations.clear(); ids.forEach((id) => faceStations.add(id)); render();
    },
    render,
  };
  window.liveAlerts = {beep};
  soundState();
  setWall(localStorage.getItem("examkiosk.wall") === "1");
  connect();
  setInterval(() => draw(false), 1000);  // help requests and reviews change outside the stream
})();
