// The kiosk page: renders what /api/state says, sends the candidate's actions to /api/event.
"use strict";

const T = {
  zh: {
    now: "", server: "", ok: "正常", down: "断开", lang: "English",
    identify_title: "请输入准考证号", identify_hint: "使用屏幕键盘输入准考证号后点击“确认”，或将准考证上的二维码对准摄像头。", confirm: "确认", clear: "清除", back: "退格",
    face_title: "人脸登录", face_hint: "请正对摄像头，保持面部光线充足，不要佩戴口罩、墨镜或帽子。", face_start: "开始人脸识别",
    face_busy: "正在识别，请保持不动…", tries: "已尝试", of: "/", face_ready: "画面良好，可以开始识别",
    review_title: "人工审核中", review_hint: "人脸识别 3 次未通过，已提交监考老师人工审核，请稍候。",
    turn_left: "请缓慢向左转头，再转回来", turn_right: "请缓慢向右转头，再转回来",
    code_label: "或输入监考老师提供的一次性验证码：", code_submit: "使用验证码",
    accept: "我已阅读并同意", scroll_more: "请阅读至末尾",
    lot_title: "抽签", lot_hint: "请点击“抽签”获取抽签号。抽签截止后系统将自动分配。", lot_draw: "抽签", lot_deadline: "抽签截止",
    dev_title: "设备检测", dev_hint: "请确认画面清晰，并对着麦克风说话，音量条应随声音跳动。", camera: "摄像头", mic: "麦克风",
    refresh_devices: "刷新设备", dev_ok: "设备正常，继续", works: "正常", notworks: "异常", say: "请说一句话测试麦克风",
    info_title: "信息确认", name: "姓名", idno: "身份证号", ticket: "准考证号", seat: "座位", exam: "考试", lotno: "抽签号",
    info_ok: "确认", info_wrong: "信息有误", mistake_prompt: "请说明哪项信息有误（考试将照常进行）：",
    wait_title: "请静待考试自动开始！", starts_at: "开考时间", remaining: "距离开考剩余",
    q: "第", q2: "题", left: "剩余时间", refresh_q: "刷新题目", next_q: "下一题", end_exam: "结束考试",
    end_confirm: "确定要结束考试吗？结束后不能再作答。", paper_loading: "题目加载中…",
    slip: "考生题签", guide: "面试指导语", page_prev: "上一页", page_next: "下一页", page_of: (p, n) => `第 ${p} 页 / 共 ${n} 页`,
    figure: "图", zoom_hint: "点击放大", image_failed: "图片加载失败，请点击“刷新题目”或举手示意",
    moved_title: "考生已转至考位", moved_hint: "本考位已停止录制，正在上传已录制的内容，完成后返回登录页面。请考生前往新考位继续考试。",
    resume_moved_hint: "您已转至本考位。点击“继续录制”回到原题继续作答，已答题目不会丢失，考试时间不做延长。",
    resume_title: "考试录制中断", resume_hint: "系统已恢复。点击“继续录制”回到答题页面，已答题目不会丢失，考试时间不做延长。", resume: "继续录制",
    up_title: "正在上传录像", up_hint: "请勿离开座位，等待提示“上传成功”。", up_ok: "上传成功", up_done_hint: "录像已全部上传并校验完成，可以离开座位。",
    next_candidate: "下一位考生", wb_hint: "模拟测试完毕，请回看模拟面试视频及佐证视频，确认摄像头、麦克风和佐证摄像头工作正常。", closed_title: "无法进入考试", closed_hint: "已超过入场截止时间，不能进入答题页面。请联系监考老师。",
    ended_early: "考试已提前结束：",
    recording_problem: "录像保存出现问题，已通知监考老师",
    min: "分", sec: "秒",
    notices: {
      ticket_invalid: "准考证号格式不正确", candidate_unknown: "未找到该准考证号，请核对后重新输入",
      entry_closed: "已超过入场截止时间", attempt_finished: "该考生已完成本场考试", wrong_station: "这不是您的考位，请举手，监考老师会带您到指定考位", mock_required: "本场考试须先完成模拟测试，请举手示意监考老师", edge_unreachable: "无法连接考点服务器，请举手示意监考老师",
      face_no_match: "人脸比对未通过，请调整姿势和光线后重试", no_face: "未检测到人脸，请正对摄像头", several_faces: "画面中有多张人脸，请确保只有考生本人",
      no_enrolment: "没有登记照片，请联系监考老师", face_failed_review: "已提交人工审核", review_rejected: "人工审核未通过，请联系监考老师",
      liveness_failed: "活体检测未通过：请按提示缓慢转头，不要使用照片或屏幕", code_invalid: "验证码不正确", code_expired: "验证码已过期，请联系监考老师",
      code_used: "验证码已被使用，请联系监考老师", too_many_tries: "验证码错误次数过多，请联系监考老师",
      read_to_end: "请先阅读至末尾", camera_dead: "摄像头没有画面，不能继续", mic_silent: "没有检测到声音，请对着麦克风说话后再继续",
      waiting_not_open: "候考室尚未开放，请稍后再试", mistake_reported: "已记录，考试结束后请联系工作人员", confirm_end: "请确认结束考试",
      paper_unavailable: "题目获取失败，请点击“刷新题目”或举手示意", paper_damaged: "试题校验失败，请举手示意监考老师", station_error: "考位故障，请举手示意监考老师",
      disk_low: "考位存储空间不足，不能开始录制，请举手示意监考老师", token_invalid: "考位未授权，请联系考点管理员", station_revoked: "考位已被停用，请联系考点管理员", lot_busy: "抽签繁忙，请重试",
    },
    reasons: {time_up: "答题时间到", ended_by_candidate: "考生结束考试", too_many_interruptions: "中断次数超过限制", interruption_too_long: "中断时间超过 2 分钟"},
  },
  en: {
    now: "Time", server: "Server", ok: "OK", down: "offline", lang: "中文",
    identify_title: "Enter your admission ticket number", identify_hint: "Type the number on the keypad and press Confirm, or show your ticket's QR code to the camera.", confirm: "Confirm", clear: "Clear", back: "Back",
    face_title: "Face login", face_hint: "Face the camera in good light; no mask, sunglasses or hat.", face_start: "Start face check",
    face_busy: "Checking, please hold still…", tries: "Tries", of: "/", face_ready: "Good picture: you can start",
    review_title: "Manual review", review_hint: "Face check failed 3 times. A proctor is reviewing your login, please wait.",
    turn_left: "Slowly turn your head to your left, then back", turn_right: "Slowly turn your head to your right, then back",
    code_label: "Or enter the one-time code a proctor gave you:", code_submit: "Use the code",
    accept: "I have read and agree", scroll_more: "Please read to the end",
    lot_title: "Draw a lot", lot_hint: "Press Draw to get your lot number. After the deadline one is assigned.", lot_draw: "Draw", lot_deadline: "Deadline",
    dev_title: "Device check", dev_hint: "Check the picture and speak: the volume bar should move.", camera: "Camera", mic: "Microphone",
    refresh_devices: "Refresh devices", dev_ok: "Devices work, continue", works: "OK", notworks: "not working", say: "Say something to test the microphone",
    info_title: "Confirm your details", name: "Name", idno: "ID number", ticket: "Ticket", seat: "Seat", exam: "Exam", lotno: "Lot",
    info_ok: "Confirm", info_wrong: "Report a mistake", mistake_prompt: "Which detail is wrong? (the exam goes on)",
    wait_title: "The exam starts automatically", starts_at: "Start", remaining: "Starts in",
    q: "Question", q2: "", left: "Time left", refresh_q: "Refresh question", next_q: "Next question", end_exam: "End exam",
    end_confirm: "End the exam now? You cannot answer afterwards.", paper_loading: "Loading the question…",
    slip: "Question slip", guide: "Instructions", page_prev: "Previous page", page_next: "Next page", page_of: (p, n) => `Page ${p} of ${n}`,
    figure: "Figure", zoom_hint: "tap to enlarge", image_failed: "The picture did not load; press Refresh question or raise your hand",
    moved_title: "The candidate moved to station", moved_hint: "This station stopped recording and is uploading what it recorded; then it returns to the login screen. The candidate continues at the new station.",
    resume_moved_hint: "You were moved to this station. Press Continue to go back to your question: answered questions are kept, time is not extended.",
    resume_title: "Recording interrupted", resume_hint: "The station is back. Press Continue: answered questions are kept, time is not extended.", resume: "Continue",
    up_title: "Uploading the recording", up_hint: "Please stay until it says upload successful.", up_ok: "Upload successful", up_done_hint: "Every part of the recording has been uploaded and verified.",
    next_candidate: "Next candidate", wb_hint: "The mock test is over: watch your recording and the evidence camera's back to make sure the cameras and the microphone work.", closed_title: "Entry closed", closed_hint: "The entry cutoff has passed. Please see a proctor.",
    ended_early: "The exam ended early: ",
    recording_problem: "A recording could not be saved; the proctor has been told",
    min: "min", sec: "s",
    notices: {
      ticket_invalid: "That is not a valid ticket number", candidate_unknown: "No candidate with this ticket number",
      entry_closed: "Entry has closed", attempt_finished: "This candidate has finished", wrong_station: "This is not your station; raise your hand and a proctor will take you to your seat", mock_required: "This sitting requires a completed mock test first; raise your hand", edge_unreachable: "Cannot reach the centre server; raise your hand",
      face_no_match: "Face did not match; adjust and try again", no_face: "No face found; face the camera", several_faces: "More than one face in view",
      no_enrolment: "No enrolled photo; see a proctor", face_failed_review: "Sent for manual review", review_rejected: "Review rejected; see a proctor",
      liveness_failed: "Liveness check failed: turn your head slowly as asked; no photos or screens", code_invalid: "Wrong code", code_expired: "The code has expired; see a proctor",
      code_used: "The code was already used; see a proctor", too_many_tries: "Too many wrong codes; see a proctor",
      read_to_end: "Read to the end first", camera_dead: "The camera shows nothing", mic_silent: "No sound heard; speak, then continue",
      waiting_not_open: "The waiting room is not open yet", mistake_reported: "Noted; see staff after the exam", confirm_end: "Confirm to end the exam",
      paper_unavailable: "Could not load the question; refresh or raise your hand", paper_damaged: "The paper failed its integrity check; raise your hand", station_error: "Station fault; raise your hand",
      disk_low: "Not enough disk space to record; please call a proctor", token_invalid: "Station not authorised", station_revoked: "Station revoked", lot_busy: "Busy, try again",
    },
    reasons: {time_up: "time is up", ended_by_candidate: "ended by the candidate", too_many_interruptions: "too many interruptions", interruption_too_long: "interruption longer than 2 minutes"},
  },
};

let lang = localStorage.getItem("kiosk-lang") || "zh";
let current = null;      // last state from the agent
let rendered = null;     // screen + lang last rendered
let ticket = "";         // what the keypad typed (ticket number, or a one-time code)
let lastCue = 0;         // when the last voice prompt was played (agent time)
let paperShown = "";     // the question (and refresh) whose pages and pictures are on screen
let paperPage = 0;       // the page of the current question the candidate is reading (0-based)
let paperPosition = 0;   // the question that page belongs to
let paperLoads = 0;      // bumped by 刷新题目: the pictures are fetched again
const speaker = new Audio();
const $ = (sel, root = document) => root.querySelector(sel);
const t = (key) => T[lang][key] ?? key;
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

function clock(ts) { return new Date(ts * 1000).toLocaleTimeString("zh-CN", {hour12: false}); }
function mmss(s) {
  if (s == null) return "--:--";
  s = Math.max(0, Math.ceil(s));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

async function send(name, payload = {}) {
  await fetch("/api/event", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({name, payload})});
  setTimeout(poll, 80);
}

function preview() { return `<img class="preview" data-live="preview" alt="camera" src="/preview.jpg?${Date.now()}">`; }
function meter() { return `<div class="meter" title="volume"><span data-live="meter"></span></div>`; }
function noticeText(s) {
  if (!s.notice) return "";
  if (s.notice_text) return s.notice_text[lang];
  return T[lang].notices[s.notice] ?? s.notice;
}
function keypad() {
  return `<div class="keypad">${[1,2,3,4,5,6,7,8,9].map((d) => `<button type="button" data-key="${d}">${d}</button>`).join("")}
      <button type="button" data-key="clear">${t("clear")}</button><button type="button" data-key="0">0</button><button type="button" data-key="back">${t("back")}</button></div>`;
}
function notice(s) {
  return `<p class="notice" data-live="notice" role="alert">${esc(noticeText(s))}</p>`;
}

const SCREENS = {
  identify: (s) => `
    <h1>${t("identify_title")}</h1><p class="hint">${t("identify_hint")}</p>
    <div class="row"><div>
    <input id="ticket" class="ticket" readonly value="${esc(ticket)}" data-field="ticket_no" aria-label="ticket">
    ${keypad()}</div>
    <div class="qr-preview">${preview()}
    ${notice(s)}
    <button type="button" class="primary big" data-action="identify">${t("confirm")}</button></div></div>`,
  face_login: (s) => `
    <h1>${t("face_title")}</h1><p class="hint">${t("face_hint")}</p>
    <div class="row">${preview()}<div><p class="guidance" data-live="guidance"></p>
    <p>${t("tries")}: <b data-live="tries">${s.face_tries}</b>${t("of")}${s.max_face_tries}</p>${notice(s)}
    <button type="button" class="primary big" data-action="face_capture" data-live="busy-disable">${t("face_start")}</button>
    <p class="hint" data-live="busy-text"></p></div></div>`,
  manual_review: (s) => `<h1>${t("review_title")}</h1><div class="row">${preview()}<div><p class="hint big-text">${t("review_hint")}</p><div class="spinner"></div>
    <p class="hint">${t("code_label")}</p>
    <input id="ticket" class="ticket" readonly value="" data-field="code" aria-label="code">
    ${keypad()}${notice(s)}
    <button type="button" class="primary big" data-action="fallback_code" data-live="busy-disable">${t("code_submit")}</button></div></div>`,
  reading: (s) => `
    <h1>${esc(s.reading.title[lang])}</h1>
    <div class="reading" id="reading" tabindex="0">${s.reading.paragraphs.map((p, i) => `<p>${i + 1}. ${esc(p[lang])}</p>`).join("")}
      <p class="end-mark">— ${lang === "zh" ? "全文完" : "end"} —</p></div>
    ${notice(s)}
    <button type="button" class="primary big" data-action="accept" id="accept" disabled>${t("scroll_more")}</button>`,
  draw_lot: (s) => `
    <h1>${t("lot_title")}</h1><p class="hint">${t("lot_hint")}</p>
    <p>${t("lot_deadline")}: <b>${clock(s.sitting.lot_deadline_at)}</b></p>${notice(s)}
    <button type="button" class="primary big" data-action="draw_lot" data-live="busy-disable">${t("lot_draw")}</button>`,
  device_check: (s) => `
    <h1>${t("dev_title")}</h1><p class="hint">${t("dev_hint")}</p>
    <div class="row">${preview()}<div class="devices">
      <label>${t("camera")} <select data-field="camera" id="camera-select"></select></label> <b data-live="camera-ok"></b>
      <label>${t("mic")} <select data-field="microphone" id="mic-select"></select></label> <b data-live="mic-ok"></b>
      ${meter()}<p class="hint">${t("say")}</p>
      <button type="button" data-action="refresh_devices">${t("refresh_devices")}</button>
    </div></div>${notice(s)}
    <button type="button" class="primary big" data-action="devices_ok">${t("dev_ok")}</button>`,
  info_confirm: (s) => `
    <h1>${t("info_title")}</h1>
    <table class="info"><tr><th>${t("name")}</th><td data-field="name">${esc(s.candidate.name)}</td></tr>
      <tr><th>${t("idno")}</th><td data-field="id_number">${esc(s.candidate.id_number_masked)}</td></tr>
      <tr><th>${t("ticket")}</th><td>${esc(s.candidate.ticket_no)}</td></tr>
      <tr><th>${t("seat")}</th><td>${esc(s.candidate.seat)}</td></tr>
      <tr><th>${t("lotno")}</th><td data-field="lot">${esc(s.lot)}</td></tr></table>
    ${notice(s)}
    <div class="actions"><button type="button" data-action="report_mistake">${t("info_wrong")}</button>
    <button type="button" class="primary big" data-action="confirm_info">${t("info_ok")}</button></div>`,
  waiting: (s) => `
    <h1>${t("wait_title")}</h1>
    <div class="row">${preview()}<div>
      <p>${t("starts_at")}: <b>${clock(s.sitting.starts_at)}</b></p>
      <p>${t("remaining")}</p><p class="countdown" data-live="countdown">${mmss(s.time_left)}</p>${meter()}</div></div>`,
  answering: (s) => `
    <div class="exam">
      <section class="paper" id="paper"><p class="slip">${t("slip")} · <b data-live="paper-title"></b></p>
        <div class="guide" data-live="paper-guide" hidden><b>${t("guide")}：</b><span></span></div>
        <h2>${t("q")} <span data-live="question">${s.question}</span> ${t("q2")} / ${s.sitting.questions}</h2>
        <div class="question" data-live="question-text">${t("paper_loading")}</div>
        <div class="pager" data-live="pager" hidden>
          <button type="button" data-action="page_prev">${t("page_prev")}</button>
          <b data-live="page-no"></b>
          <button type="button" data-action="page_next">${t("page_next")}</button></div>
        <div class="figures" data-live="figures"></div>
        <button type="button" data-action="refresh_question">${t("refresh_q")}</button></section>
      <aside>${preview()}${meter()}
        <p>${t("left")}</p><p class="countdown" data-live="countdown">${mmss(s.time_left)}</p>
        <p>${esc(s.candidate.name)} · ${esc(s.candidate.id_number_masked)}</p>
        ${notice(s)}
        ${s.sitting.timing_mode === "whole_session" ? `
          <button type="button" data-action="next_question" ${s.question >= s.sitting.questions ? "disabled" : ""}>${t("next_q")}</button>
          ${s.sitting.early_finish ? `<button type="button" class="danger" data-action="end_exam">${t("end_exam")}</button>` : ""}` : ""}
      </aside></div>`,
  resume: (s) => `
    <h1>${t("resume_title")}</h1><p class="hint big-text">${t(s.resume_cause === "moved" ? "resume_moved_hint" : "resume_hint")}</p>
    <p>${t("left")}: <b class="countdown" data-live="countdown">${mmss(s.time_left)}</b></p>
    <button type="button" class="primary big" data-action="resume">${t("resume")}</button>`,
  moved: (s) => `
    <h1 data-live="moved-to">${t("moved_title")} ${esc(s.moved_to ?? "")}</h1><p class="hint big-text">${t("moved_hint")}</p>
    <div class="progress"><span data-live="progress"></span></div><p data-live="progress-text"></p>`,
  uploading: (s) => `
    <h1>${t("up_title")}</h1><p class="hint">${t("up_hint")}</p>
    ${s.end_reason && s.end_reason !== "time_up" && s.end_reason !== "ended_by_candidate" ? `<p class="notice">${t("ended_early")}${esc(T[lang].reasons[s.end_reason] ?? s.end_reason)}</p>` : ""}
    <div class="progress"><span data-live="progress"></span></div><p data-live="progress-text"></p>`,
  done: (s) => `
    <h1 class="success" data-live="upload-ok">${t("up_ok")}</h1><p class="hint big-text">${t("up_done_hint")}</p>
    ${s.end_reason && s.end_reason !== "time_up" && s.end_reason !== "ended_by_candidate" ? `<p class="notice">${t("ended_early")}${esc(T[lang].reasons[s.end_reason] ?? s.end_reason)}</p>` : ""}
    ${s.sitting && s.sitting.kind === "mock" ? `<p class="hint" data-live="watchback-hint">${t("wb_hint")}</p>
      <div class="wb-actions"><button type="button" class="primary big" data-action="watchback">回看录像 Watch back</button>
      <button type="button" class="big" data-action="next_candidate">完成 Done</button></div>
      <section class="wb-box" data-live="watchback" hidden></section>`
      : `<button type="button" data-action="next_candidate">${t("next_candidate")}</button>`}`,
  entry_closed: (s) => `<h1>${t("closed_title")}</h1><p class="hint big-text">${t("closed_hint")}</p>
    <button type="button" data-action="next_candidate">${t("next_candidate")}</button>`,
};
SCREENS.read_flow = SCREENS.read_pledge = SCREENS.read_notice = SCREENS.reading;

function render(s) {
  const key = `${s.screen}|${lang}`;
  document.documentElement.dataset.screen = s.screen;
  if (key !== rendered) {
    if (!rendered || rendered.split("|")[0] !== s.screen) ticket = "";
    rendered = key;
    if (window.KioskWatchback) KioskWatchback.beforeRender();
    $("#screen").innerHTML = (SCREENS[s.screen] || (() => `<h1>${esc(s.screen)}</h1>`))(s);
    paperShown = "";  // a fresh screen: its paper part is filled in again
    afterRender(s);
  }
  update(s);
}

function afterRender(s) {
  const reading = $("#reading");
  if (reading) {
    const check = () => {
      if (reading.scrollTop + reading.clientHeight >= reading.scrollHeight - 4) {
        $("#accept").disabled = false;
        $("#accept").textContent = t("accept");
        reading.dataset.read = "end";
      }
    };
    reading.addEventListener("scroll", check);
    check();
  }
  if (s.screen === "device_check") loadDevices();
  if (window.KioskWatchback) KioskWatchback.afterRender(s);  // the done screen's watch-back (watchback.js)
}

async function loadDevices() {
  const r = await fetch("/api/devices");
  if (!r.ok) return;
  const d = await r.json();
  const fill = (sel, items, currentName) => {
    const el = $(sel);
    if (!el) return;
    el.innerHTML = (items.length ? items : [currentName || "—"]).map((x) => `<option>${esc(x)}</option>`).join("");
  };
  fill("#camera-select", d.cameras, d.camera);
  fill("#mic-select", d.microphones, d.microphone);
}

function speak(s) {
  if (!s.cue || s.cue.at === lastCue) return;
  lastCue = s.cue.at;
  speaker.src = `/voice/${encodeURIComponent(s.cue.name)}.wav`;
  speaker.play().catch(() => {});  // no audio device, or autoplay refused: the screen says it too
}

function update(s) {
  speak(s);
  if (window.KioskHelp) KioskHelp.update(s, lang);  // help panel, reply notice, broadcast banners (help.js)
  $("#now").textContent = clock(s.server_time);
  const server = $("#server");
  server.textContent = s.server_ok ? t("ok") : t("down");
  server.className = s.server_ok ? "ok" : "down";
  $("#backlog").textContent = s.backlog;
  const problem = $("#recording-problem");  // a sealed segment not journaled yet (staff were told)
  if (problem) { problem.hidden = !s.recording_problem; problem.textContent = s.recording_problem ? t("recording_problem") : ""; }
  $("#candidate-info").textContent = s.candidate ? `${s.candidate.name} · ${s.candidate.id_number_masked}${s.lot ? " · " + t("lotno") + " " + s.lot : ""}` : "";
  document.querySelectorAll("[data-live=countdown]").forEach((el) => { el.textContent = mmss(s.time_left); });
  document.querySelectorAll("[data-live=meter]").forEach((el) => { el.style.width = `${Math.round(s.mic_level * 100)}%`; });
  document.querySelectorAll("[data-live=notice]").forEach((el) => { el.textContent = noticeText(s); });
  document.querySelectorAll("[data-live=guidance]").forEach((el) => {
    el.textContent = s.guidance ? s.guidance[lang] : (s.screen === "face_login" ? t("face_ready") : "");
    el.className = s.guidance ? "guidance warn" : "guidance ok";
    el.dataset.code = s.guidance ? s.guidance.code : "ok";
  });
  document.querySelectorAll("[data-live=busy-disable]").forEach((el) => { el.disabled = !!s.busy; });
  document.querySelectorAll("[data-live=busy-text]").forEach((el) => {
    el.textContent = s.challenge ? t(`turn_${s.challenge}`) : (s.busy ? t("face_busy") : "");
    el.className = s.challenge ? "hint challenge" : "hint";
    el.dataset.challenge = s.challenge || "";
  });
  const tries = $("[data-live=tries]"); if (tries) tries.textContent = s.face_tries;
  const camOk = $("[data-live=camera-ok]"); if (camOk) { camOk.textContent = s.camera_ok ? "✓ " + t("works") : "✗ " + t("notworks"); camOk.className = s.camera_ok ? "ok" : "down"; }
  const micOk = $("[data-live=mic-ok]"); if (micOk) { micOk.textContent = s.mic_ok ? "✓ " + t("works") : "✗ " + t("notworks"); micOk.className = s.mic_ok ? "ok" : "down"; }
  const q = $("[data-live=question]"); if (q) q.textContent = s.question;
  showPaper(s);
  if (s.upload) {
    const pct = s.upload.bytes_total ? Math.floor((100 * s.upload.bytes_done) / s.upload.bytes_total) : 0;
    const bar = $("[data-live=progress]"); if (bar) bar.style.width = `${pct}%`;
    const txt = $("[data-live=progress-text]");
    if (txt) txt.textContent = `${(s.upload.bytes_done / 1e6).toFixed(1)} / ${(s.upload.bytes_total / 1e6).toFixed(1)} MB · ${s.upload.verified}/${s.upload.segments} · ${pct}%`;
  }
}

// The answering screen's paper: the question's pages one at a time (with paging) and its pictures,
// which the kiosk's server answers from the paper in memory (station/kiosk/paper_view.py).
function showPaper(s) {
  const qt = $("[data-live=question-text]");
  if (!qt) return;
  const paper = s.paper && s.paper.text ? s.paper : null;
  const key = paper ? `${paper.position}|${paper.pages.length}|${paper.images.length}|${paperLoads}|${lang}` : "";
  if (key !== paperShown) {
    const position = paper ? paper.position : 0;
    if (position !== paperPosition) { paperPage = 0; paperPosition = position; }
    paperShown = key;
    const title = $("[data-live=paper-title]"); if (title) title.textContent = paper ? paper.title || "" : "";
    const guide = $("[data-live=paper-guide]");
    if (guide) { guide.hidden = !(paper && paper.instructions); $("span", guide).textContent = paper ? paper.instructions || "" : ""; }
    const figures = $("[data-live=figures]");
    figures.innerHTML = paper && paper.images.length ? `${paper.images.map((img, i) => `
      <figure><img src="${esc(img.url)}?v=${paperLoads}" alt="${esc(t("figure"))} ${i + 1}" data-image="${i + 1}" draggable="false">
        <figcaption>${t("figure")} ${i + 1} · ${t("zoom_hint")}</figcaption></figure>`).join("")}` : "";
    figures.querySelectorAll("img").forEach((img) => {
      img.addEventListener("load", () => { img.dataset.loaded = "yes"; });
      img.addEventListener("error", () => { img.dataset.loaded = "failed"; img.closest("figure").querySelector("figcaption").textContent = t("image_failed"); });
    });
  }
  const pages = paper ? paper.pages : [];
  paperPage = Math.min(paperPage, Math.max(0, pages.length - 1));
  qt.textContent = paper ? pages[paperPage] : t("paper_loading");
  qt.dataset.loaded = paper ? "yes" : "no";
  qt.dataset.page = String(paperPage + 1);
  const pager = $("[data-live=pager]");
  pager.hidden = pages.length <= 1;
  $("[data-live=page-no]").textContent = pages.length ? t("page_of")(paperPage + 1, pages.length) : "";
  $("[data-action=page_prev]").disabled = paperPage <= 0;
  $("[data-action=page_next]").disabled = paperPage >= pages.length - 1;
}

function zoom(img) {
  const overlay = document.createElement("div");
  overlay.className = "zoom";
  overlay.dataset.live = "zoom";
  overlay.innerHTML = `<img src="${esc(img.src)}" alt="${esc(img.alt)}" draggable="false">`;
  overlay.addEventListener("click", () => overlay.remove());
  document.body.appendChild(overlay);
}

// Question content may not be copied, saved or dragged out (candidates may not copy the paper).
["copy", "cut", "contextmenu", "dragstart", "selectstart"].forEach((name) => document.addEventListener(name, (ev) => {
  if (ev.target.closest && ev.target.closest("#paper, .zoom")) ev.preventDefault();
}));

function refreshPreview() {
  document.querySelectorAll("[data-live=preview]").forEach((img) => {
    if (img.complete) img.src = `/preview.jpg?${Date.now()}`;
  });
}

// The agent's stream tells the page at each change (the first question at the very start);
// polling /api/state stays the fallback while the stream is down (EventSource reconnects by itself).
let streaming = false;
function listen() {
  if (!window.EventSource) return;
  const source = new EventSource("/api/stream");
  source.onmessage = (ev) => {
    streaming = true;
    current = JSON.parse(ev.data);
    render(current);
  };
  source.onerror = () => { streaming = false; };
}

async function poll() {
  if (streaming) return;
  try {
    const r = await fetch("/api/state", {cache: "no-store"});
    current = await r.json();
    render(current);
  } catch (e) {
    $("#server").textContent = t("down");
  }
}

document.addEventListener("click", (ev) => {
  const figure = ev.target.closest("[data-live=figures] img");
  if (figure) { zoom(figure); return; }
  const key = ev.target.closest("[data-key]");
  if (key) {
    const k = key.dataset.key;
    if (k === "clear") ticket = ""; else if (k === "back") ticket = ticket.slice(0, -1); else if (ticket.length < 20) ticket += k;
    $("#ticket").value = ticket;
    return;
  }
  const btn = ev.target.closest("[data-action]");
  if (!btn || btn.disabled) return;
  const action = btn.dataset.action;
  if (window.KioskHelp && KioskHelp.handles(action)) return;  // help.js handles its own
  if (window.KioskWatchback && KioskWatchback.handles(action, btn)) return;  // and watchback.js
  if (action === "page_prev" || action === "page_next") {
    paperPage += action === "page_next" ? 1 : -1;
    if (current) showPaper(current);
    return;
  }
  if (action === "refresh_question") paperLoads += 1;  // and fetch the pictures again
  if (action === "lang") {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("kiosk-lang", lang);
    $("#lang").textContent = t("lang");
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    rendered = null;
    if (current) render(current);
    return;
  }
  if (action === "identify") { send("identify", {ticket_no: ticket}); ticket = ""; return; }
  if (action === "fallback_code") { send("fallback_code", {code: ticket}); ticket = ""; $("#ticket").value = ""; return; }
  if (action === "accept") { send("accept", {read_to_end: $("#reading").dataset.read === "end"}); return; }
  if (action === "report_mistake") {
    const text = window.prompt(t("mistake_prompt"));
    // The station keeps 500 characters (code points, so no surrogate pair is cut in two).
    if (text !== null) send("report_mistake", {text: Array.from(text).slice(0, 500).join("")});
    return;
  }
  if (action === "end_exam") { if (window.confirm(t("end_confirm"))) send("end_exam", {confirmed: true}); return; }
  send(action);
});

// A physical keyboard works on the keypad too.
document.addEventListener("keydown", (ev) => {
  if (ev.target.closest && ev.target.closest("#help-panel")) return;  // typing a help text
  if (!current || (current.screen !== "identify" && current.screen !== "manual_review")) return;
  if (/^[0-9A-Za-z]$/.test(ev.key) && ticket.length < 20) ticket += ev.key;
  else if (ev.key === "Backspace") ticket = ticket.slice(0, -1);
  else if (ev.key === "Enter") {
    if (current.screen === "identify") send("identify", {ticket_no: ticket}); else send("fallback_code", {code: ticket});
    ticket = "";
  }
  const input = $("#ticket"); if (input) input.value = ticket;
});

// Leaving the exam page is a monitoring flag (it informs the proctor, it never stops the exam).
function reportFocus() {
  const visible = document.visibilityState === "visible" && document.hasFocus();
  fetch("/api/focus", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({visible})});
}
document.addEventListener("visibilitychange", reportFocus);
window.addEventListener("blur", reportFocus);
window.addEventListener("focus", reportFocus);

$("#lang").textContent = t("lang");
listen();
poll();
setInterval(poll, 300);
setInterval(refreshPreview, 400);
