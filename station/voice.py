"""Mandarin voice prompts (F15), generated offline with Debian's ``espeak-ng -v cmn``.

The station's state machine (:mod:`station.flow`) emits ``Speak(cue)`` commands; each
cue name is a key of :data:`PROMPTS` and the kiosk plays ``<prompt_dir>/<cue>.wav``.
Voice can be switched off per centre (``kiosk.voice`` in the station config).

:func:`build_prompts` runs at setup time. It is incremental: ``prompts.json`` in the
output directory records, per cue, a hash of the text and the synthesis settings, and a
WAV whose hash still matches is left alone (its mtime does not change). Each WAV is
written under a temporary name and renamed into place, so a crash never leaves a
truncated prompt behind.

Run ``python -m station.voice --out DIR`` to build all prompts and print their paths.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

__all__ = ["PROMPTS", "VoiceError", "build_prompts", "manifest_name", "text_hash", "main"]

# Cue name -> text spoken. The guidance cues use the codes of station.face_quality and
# say the short form of the on-screen GUIDANCE_ZH message.
PROMPTS: dict[str, str] = {
    "face_camera": "请正对摄像头，开始人脸识别",
    "face_no_match": "人脸比对未通过，请正对摄像头重试",
    "no_face": "未检测到人脸，请正对摄像头",
    "several_faces": "画面中有多张人脸，只能有您本人",
    "too_small": "距离太远，请靠近摄像头",
    "off_centre": "请将面部移到画面中央",
    "too_dark": "光线太暗，请打开灯",
    "backlit": "背光太强，请不要背对窗户或灯光",
    "blurred": "画面模糊，请保持不动",
    "face_covered": "面部被遮挡，请露出眼睛和嘴巴",
    "turn_left": "请缓慢向左转头，再转回来",
    "turn_right": "请缓慢向右转头，再转回来",
    "liveness_failed": "活体检测未通过，请按提示缓慢转头",
    "waiting_room": "已进入候考，请静待考试开始",
    "exam_start": "考试开始，请开始作答",
    "one_minute_left": "剩余一分钟",
    "next_question": "请回答下一题",
    "answer_finished": "答题结束，正在上传录像，请勿离开",
    "upload_ok": "上传成功",
}

manifest_name = "prompts.json"
ESPEAK = "espeak-ng"
_TIMEOUT_S = 60.0


class VoiceError(RuntimeError):
    """espeak-ng is missing, or failed to produce a prompt."""


def text_hash(text: str, *, voice: str, speed: int) -> str:
    """Hash of everything that decides a prompt's sound: the text, voice and speed."""
    return hashlib.sha256(f"{voice}\0{speed}\0{text}".encode("utf-8")).hexdigest()


def _espeak() -> str:
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise VoiceError(f"{ESPEAK} not found on PATH; install it with: apt-get install espeak-ng")
    return exe


def _load_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, OSError):
        return {}
    if not isinstance(data, dict):
        return {}
    hashes = data.get("hashes", {})
    if not isinstance(hashes, dict):
        return {}
    return {str(k): str(v) for k, v in hashes.items()}


def _write_atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _valid_wav(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() > 0
    except (wave.Error, EOFError, OSError):
        return False


def _synthesise(exe: str, text: str, dest: Path, *, voice: str, speed: int) -> None:
    """Speak ``text`` into ``dest`` via a temporary file renamed into place."""
    tmp = dest.with_name(f".{dest.stem}.tmp.wav")
    cmd = [exe, "-v", voice, "-s", str(speed), "-b", "1", "-w", str(tmp), "--stdin"]
    try:
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=_TIMEOUT_S)
    except OSError as exc:
        raise VoiceError(f"cannot run {exe}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        tmp.unlink(missing_ok=True)
        raise VoiceError(f"{ESPEAK} timed out on {dest.name}") from exc
    if proc.returncode != 0 or not _valid_wav(tmp):
        tmp.unlink(missing_ok=True)
        err = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
        raise VoiceError(f"{ESPEAK} -v {voice} failed for {dest.name} (rc={proc.returncode}): {err or 'no audio'}")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)


def build_prompts(out_dir: Path, *, voice: str = "cmn", speed: int = 150) -> dict[str, Path]:
    """Generate ``<out_dir>/<cue>.wav`` for every cue in :data:`PROMPTS`; return cue -> path.

    A WAV is rebuilt only when it is missing, unreadable, or its text/voice/speed hash
    differs from the one recorded in ``prompts.json``. Raises :class:`VoiceError` when
    espeak-ng is not installed or fails (for example an unknown ``voice``).
    """
    out_dir = Path(out_dir)
    exe = _espeak()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / manifest_name
    old = _load_manifest(manifest_path)
    hashes: dict[str, str] = {}
    paths: dict[str, Path] = {}
    changed = False
    try:
        for cue, text in PROMPTS.items():
            digest = text_hash(text, voice=voice, speed=speed)
            dest = out_dir / f"{cue}.wav"
            if old.get(cue) != digest or not _valid_wav(dest):
                _synthesise(exe, text, dest, voice=voice, speed=speed)
                changed = True
            hashes[cue] = digest
            paths[cue] = dest
    finally:
        # Record what was built so far even on failure, so a rerun resumes from there.
        kept = {cue: h for cue, h in old.items() if cue in PROMPTS and cue not in hashes}
        merged = {**kept, **hashes}
        if changed or merged != old:
            _write_atomic_json(manifest_path, {"voice": voice, "speed": speed, "hashes": merged})
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m station.voice",
                                     description="Generate the kiosk's Mandarin voice prompts with espeak-ng.")
    parser.add_argument("--out", type=Path, required=True, help="directory for the WAV files")
    parser.add_argument("--voice", default="cmn", help="espeak-ng voice (default: cmn)")
    parser.add_argument("--speed", type=int, default=150, help="words per minute (default: 150)")
    args = parser.parse_args(argv)
    try:
        paths = build_prompts(args.out, voice=args.voice, speed=args.speed)
    except VoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for cue, path in paths.items():
        print(f"{cue}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
