// The review player: the main camera drives one clock, the evidence camera follows it.
//
// The main video gives the sound and the time; the evidence video (muted) is played, paused,
// seeked and rate-changed with it. A drift of more than 50 ms is corrected: by a short change of
// the evidence video's playback rate while it is under a second, by a seek beyond that (or while
// paused). Flag marks on the timeline seek both videos to their offset; the timeline bar seeks to
// where it is clicked. Keys: Space play/pause, ←/→ ∓5 s, J back 10 s, K pause, L forward 10 s.
(function () {
  "use strict";

  const DRIFT = 0.05; // seconds of drift that are corrected
  const SEEK_DRIFT = 1.0; // above this a seek, below it a rate change
  const root = document.querySelector("[data-player]");
  if (!root) return;
  const main = root.querySelector("video[data-role=main]");
  const evidence = root.querySelector("video[data-role=evidence]");
  const clock = main || evidence;
  const timeline = root.querySelector("[data-timeline]");
  const progress = root.querySelector("[data-progress]");
  const timeField = root.querySelector("[data-field=time]");
  const driftField = root.querySelector("[data-field=drift]");
  if (!clock) return;
  const follower = main && evidence ? evidence : null;
  if (follower) follower.muted = true;

  function duration() {
    if (Number.isFinite(clock.duration) && clock.duration > 0) return clock.duration;
    return parseFloat(root.dataset.duration || "0") || 0;
  }

  function fmt(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  function seek(to) {
    const end = duration();
    const target = Math.max(0, end ? Math.min(to, end) : to);
    clock.currentTime = target;
    if (follower) follower.currentTime = target;
    render();
  }

  function toggle() {
    if (clock.paused) play(); else pause();
  }

  function play() {
    const started = clock.play();
    if (started && started.catch) started.catch(function () {});
  }

  function pause() {
    clock.pause();
  }

  function follow() {
    if (!follower) return;
    const drift = follower.currentTime - clock.currentTime;
    if (driftField) driftField.textContent = Math.round(Math.abs(drift) * 1000) + " ms";
    if (clock.paused || clock.seeking) {
      if (!follower.paused) follower.pause();
      if (Math.abs(drift) > 0.01 && !follower.seeking) follower.currentTime = clock.currentTime;
      follower.playbackRate = clock.playbackRate;
      return;
    }
    if (follower.paused && !follower.ended) {
      const started = follower.play();
      if (started && started.catch) started.catch(function () {});
    }
    if (Math.abs(drift) > SEEK_DRIFT) {
      if (!follower.seeking) follower.currentTime = clock.currentTime;
      follower.playbackRate = clock.playbackRate;
    } else if (Math.abs(drift) > DRIFT) {
      // Behind: a little faster; ahead: a little slower, until it is back within the limit.
      const nudge = Math.min(0.5, Math.max(-0.5, -drift * 2));
      follower.playbackRate = clock.playbackRate * (1 + nudge);
    } else if (Math.abs(drift) < DRIFT / 2) {
      follower.playbackRate = clock.playbackRate;
    }
  }

  function render() {
    const end = duration();
    if (timeField) timeField.textContent = fmt(clock.currentTime) + " / " + fmt(end);
    if (progress && end) progress.style.width = (100 * clock.currentTime / end) + "%";
  }

  function placeMarks() {
    const end = duration();
    if (!end || !timeline) return;
    timeline.querySelectorAll("[data-flag-at]").forEach(function (mark) {
      const at = parseFloat(mark.dataset.flagAt);
      const until = parseFloat(mark.dataset.flagEnd || mark.dataset.flagAt);
      mark.style.left = (100 * Math.min(at, end) / end) + "%";
      mark.style.width = "max(6px, " + (100 * Math.max(0, Math.min(until, end) - at) / end) + "%)";
    });
  }

  function tick() {
    follow();
    render();
  }

  clock.addEventListener("play", follow);
  clock.addEventListener("pause", follow);
  clock.addEventListener("seeking", follow);
  clock.addEventListener("seeked", follow);
  clock.addEventListener("ratechange", follow);
  clock.addEventListener("timeupdate", render);
  clock.addEventListener("loadedmetadata", function () { placeMarks(); render(); });
  setInterval(tick, 40);

  root.querySelectorAll("[data-flag-at]").forEach(function (mark) {
    mark.addEventListener("click", function (event) {
      event.stopPropagation();
      seek(parseFloat(mark.dataset.flagAt));
    });
  });
  if (timeline) {
    timeline.addEventListener("click", function (event) {
      const box = timeline.getBoundingClientRect();
      if (box.width > 0) seek(duration() * (event.clientX - box.left) / box.width);
    });
  }
  root.querySelectorAll("[data-action=play]").forEach(function (button) {
    button.addEventListener("click", toggle);
  });

  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const actions = {
      " ": toggle,
      ArrowLeft: function () { seek(clock.currentTime - 5); },
      ArrowRight: function () { seek(clock.currentTime + 5); },
      j: function () { seek(clock.currentTime - 10); },
      k: pause,
      l: function () { seek(clock.currentTime + 10); },
    };
    if (!(key in actions)) return;
    event.preventDefault();
    actions[key]();
  });

  // A focused button (a flag mark, play) would also take Space as a click on key-up: the page's
  // Space means play/pause wherever the focus is, except in a text field.
  document.addEventListener("keyup", function (event) {
    const target = event.target;
    if (event.key === " " && target && target.tagName === "BUTTON") event.preventDefault();
  });

  placeMarks();
  render();
})();
