// The watch-back (回看) of a mock attempt, on the done screen: the station's own recording of it,
// the main camera with sound and the evidence camera beside it in sync, a seek bar (the player's
// own), per-question chapters, and what the check found. /api/watchback prepares the films on the
// station (station/kiosk/watchback.py); 完成 (next_candidate) stops them and returns to the login.
"use strict";

const KioskWatchback = (() => {
  // Every text in Chinese first, English second (the watch-back does not follow the language button).
  const MESSAGES = {
    recording_deleted: ["本次模拟测试的录像已按保留期限从本考位删除，无法回看。如需帮助请举手示意监考老师。",
      "The recording of this mock test was deleted from this station after its retention period and cannot be watched back. Raise your hand if you need help."],
    recording_unreadable: ["录像无法读取，无法回看。请举手示意监考老师。",
      "The recording cannot be read, so it cannot be watched back. Please raise your hand."],
    no_recording: ["本考位没有这次模拟测试的录像。", "This station has no recording of this mock test."],
    not_mock: ["正式考试不提供回看。", "Formal exams are not played back."],
    not_done: ["考试尚未结束或录像尚未上传完成。", "The exam is not over or its upload is not complete yet."],
    failed: ["回看暂时无法打开，请稍后再试或举手示意监考老师。", "Watch back cannot be opened now; try again or raise your hand."],
  };
  const SYNC_TOLERANCE = 0.25;  // seconds the evidence camera may drift from the main one before it is moved
  let open = false;   // the player is open (kept across a re-render of the screen, e.g. the language button)
  let resumeAt = 0;   // where the main film was when the screen was rendered again

  const $ = (sel, root = document) => root.querySelector(sel);
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const both = (zh, en) => `<span class="zh">${zh}</span> <span class="en">${en}</span>`;
  function mmss(s) {
    s = Math.max(0, Math.floor(s || 0));
    return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  }
  const seconds = (s) => `${Math.round(s)} 秒 s`;

  function message(code) {
    const [zh, en] = MESSAGES[code] || MESSAGES.failed;
    return `<div class="wb-message" data-live="watchback-message" data-code="${esc(code)}" role="alert">
      <p class="zh">${esc(zh)}</p><p class="en">${esc(en)}</p></div>`;
  }

  function chapterLabel(c) {
    if (c.question === null) return both("候考", "Waiting room");
    return both(`第 ${c.question} 题`, `Question ${c.question}`);
  }

  function checkTable(check) {
    const expected = check.expected_seconds == null ? "—" : seconds(check.expected_seconds);
    const loud = check.loudest_level == null ? both("未知（考位重启过）", "unknown (the station restarted)")
      : `${Math.round(check.loudest_level * 100)}% (${check.loudest_dbfs.toFixed(1)} dBFS)`;
    const quiet = check.loudest_level != null && check.loudest_level < 0.35;
    return `<table class="wb-check" data-live="watchback-check">
      <tr><th>${both("录制时长", "Recorded")}</th><td data-check="seconds">${seconds(check.recorded_seconds)} / ${expected}</td></tr>
      <tr><th>${both("麦克风最大音量", "Loudest microphone level")}</th><td data-check="loudest" class="${quiet ? "down" : ""}">${loud}</td></tr>
      <tr><th>${both("服务器已校验片段", "Segments verified by the server")}</th><td data-check="verified">${check.verified} / ${check.expected_segments}</td></tr>
      ${check.missing ? `<tr><th>${both("已删除片段", "Segments deleted")}</th><td data-check="missing">${check.missing} / ${check.segments}</td></tr>` : ""}
    </table>`;
  }

  function player(data) {
    const main = data.films.find((f) => f.camera === "main");
    const others = data.films.filter((f) => f.camera !== "main");
    const video = (f, muted) => `<video data-film="${esc(f.camera)}" data-offset="${f.offset}" src="${esc(f.url)}"
      ${muted ? "muted" : "controls"} preload="auto" playsinline disablepictureinpicture
      controlslist="nodownload nofullscreen noremoteplayback"></video>`;
    return `<div class="wb" data-live="watchback-player">
      <div class="wb-main">${video(main, false)}
        <div class="wb-controls">
          <button type="button" class="primary" data-action="watchback_play">${both("播放", "Play")}</button>
          <b data-live="watchback-time">00:00 / ${mmss(main.seconds)}</b></div>
        <div class="wb-chapters">${data.chapters.map((c) => `<button type="button" data-action="watchback_chapter"
          data-at="${c.at}" data-question="${c.question ?? "waiting"}">${chapterLabel(c)}<small>${seconds(c.seconds)}${c.expected ? " / " + seconds(c.expected) : ""}</small></button>`).join("")}</div>
      </div>
      <aside class="wb-side">
        ${others.length ? others.map((f) => `${video(f, true)}<p class="hint">${both("佐证摄像头", "Evidence camera")}</p>`).join("")
          : `<p class="hint">${both("本考位没有佐证摄像头", "This station has no evidence camera")}</p>`}
        ${checkTable(data.check)}
      </aside></div>`;
  }

  // The evidence cameras follow the main film: same moment (their offset taken off), same play/pause.
  function follow(main) {
    document.querySelectorAll("[data-live=watchback-player] video:not([data-film=main])").forEach((other) => {
        const target = main.currentTime - Number(other.dataset.offset || 0);
        const inside = target >= 0 && (!other.duration || target <= other.duration);
        if (inside && Math.abs(other.currentTime - target) > SYNC_TOLERANCE) other.currentTime = target;
        if (!main.paused && inside && other.paused) other.play().catch(() => {});
        if ((main.paused || !inside) && !other.paused) other.pause();
    });
  }

  function wire(box) {
    const main = $("video[data-film=main]", box);
    const button = $("[data-action=watchback_play]", box);
    const time = $("[data-live=watchback-time]", box);
    const label = () => { button.innerHTML = main.paused ? both("播放", "Play") : both("暂停", "Pause"); };
    ["play", "pause", "ended"].forEach((name) => main.addEventListener(name, () => { label(); follow(main); }));
    ["seeked", "timeupdate"].forEach((name) => main.addEventListener(name, () => {
      time.textContent = `${mmss(main.currentTime)} / ${mmss(main.duration || 0)}`;
      follow(main);
    }));
    main.addEventListener("loadedmetadata", () => { if (resumeAt) { main.currentTime = resumeAt; resumeAt = 0; } });
  }

  async function show() {
    const box = $("[data-live=watchback]");
    if (!box) return;
    open = true;
    document.documentElement.dataset.watchback = "open";
    box.hidden = false;
    box.innerHTML = `<p class="hint">${both("正在准备录像…", "Preparing the recording…")}</p>`;
    let response, data;
    try {
      response = await fetch("/api/watchback", {cache: "no-store"});
      data = await response.json();
    } catch (e) {
      box.innerHTML = message("failed");
      return;
    }
    if (!response.ok) { box.innerHTML = message(data.code); return; }
    box.innerHTML = player(data);
    wire(box);
  }

  function stop() {
    document.querySelectorAll("[data-live=watchback-player] video").forEach((v) => { v.pause(); v.removeAttribute("src"); v.load(); });
    open = false;
    resumeAt = 0;
    delete document.documentElement.dataset.watchback;
  }

  return {
    // The page's click handler asks first: true when the action is the watch-back's own.
    handles(action, button) {
      const main = $("video[data-film=main]");
      if (action === "watchback") { show(); return true; }
      if (action === "watchback_play") { if (main) { if (main.paused) main.play().catch(() => {}); else main.pause(); } return true; }
      if (action === "watchback_chapter") { if (main) main.currentTime = Number(button.dataset.at); return true; }
      if (action === "next_candidate") stop();  // 完成: the page still sends it to the station
      return false;
    },
    // After the screen was rendered again: reopen the player where it was (or forget it off the done screen).
    afterRender(s) {
      if (s.screen !== "done") { if (open) stop(); return; }
      if (open) show();
    },
    // Before the screen is rendered again: remember where the main film was.
    beforeRender() {
      const main = $("video[data-film=main]");
      if (open && main) resumeAt = main.currentTime;
    },
  };
})();
window.KioskWatchback = KioskWatchback;
