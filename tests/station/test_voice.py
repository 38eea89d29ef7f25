"""Voice prompts: real espeak-ng output, checked as audio."""
from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from station import voice
from station.voice import PROMPTS, VoiceError, build_prompts

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

CUES = {
    "face_camera", "face_no_match", "no_face", "several_faces", "too_small", "off_centre", "too_dark",
    "backlit", "blurred", "face_covered", "turn_left", "turn_right", "liveness_failed", "waiting_room", "exam_start", "one_minute_left",
    "next_question", "answer_finished", "upload_ok",
}


def _read(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        raw = w.readframes(params.nframes)
    assert params.sampwidth == 2, "espeak-ng writes 16-bit PCM"
    return params, np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("prompts")
    return out, build_prompts(out)


def test_prompt_keys() -> None:
    assert set(PROMPTS) == CUES
    assert PROMPTS["face_camera"] == "请正对摄像头，开始人脸识别"
    assert PROMPTS["upload_ok"] == "上传成功"
    assert all(text.strip() for text in PROMPTS.values())


def test_guidance_cues_cover_face_quality_codes() -> None:
    face_quality = pytest.importorskip("station.vision.face_quality")
    assert set(face_quality.GUIDANCE_ZH) <= set(PROMPTS)


def test_every_cue_is_a_real_wav(built: tuple[Path, dict[str, Path]]) -> None:
    out, paths = built
    assert set(paths) == CUES
    for cue, path in paths.items():
        assert path == out / f"{cue}.wav" and path.is_file()
        assert path.read_bytes()[:4] == b"RIFF" and path.read_bytes()[8:12] == b"WAVE"
        params, samples = _read(path)
        assert params.nchannels == 1, cue
        duration = params.nframes / params.framerate
        assert duration > 0.3, (cue, duration)
        rms = float(np.sqrt(np.mean(samples ** 2)))
        assert rms > 0.01, (cue, rms)
    assert not list(out.glob(".*.tmp*")), "no temporary files left behind"
    manifest = json.loads((out / "prompts.json").read_text(encoding="utf-8"))
    assert set(manifest["hashes"]) == CUES


def test_longer_text_gives_longer_audio(built: tuple[Path, dict[str, Path]]) -> None:
    _, paths = built
    short, _ = _read(paths["upload_ok"])
    long, _ = _read(paths["answer_finished"])
    assert long.nframes > short.nframes


def test_second_build_does_not_rewrite(tmp_path: Path) -> None:
    first = build_prompts(tmp_path)
    before = {cue: p.stat().st_mtime_ns for cue, p in first.items()}
    manifest_before = (tmp_path / "prompts.json").stat().st_mtime_ns
    second = build_prompts(tmp_path)
    assert second == first
    assert {cue: p.stat().st_mtime_ns for cue, p in second.items()} == before
    assert (tmp_path / "prompts.json").stat().st_mtime_ns == manifest_before


def test_changed_text_rebuilds_only_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_prompts(tmp_path)
    before = {cue: p.stat().st_mtime_ns for cue, p in first.items()}
    old_frames = _read(first["upload_ok"])[0].nframes
    monkeypatch.setitem(voice.PROMPTS, "upload_ok", "录像已全部上传成功，谢谢")
    second = build_prompts(tmp_path)
    after = {cue: p.stat().st_mtime_ns for cue, p in second.items()}
    assert after["upload_ok"] != before["upload_ok"]
    assert {c: m for c, m in after.items() if c != "upload_ok"} == {c: m for c, m in before.items() if c != "upload_ok"}
    assert _read(second["upload_ok"])[0].nframes > old_frames


def test_missing_or_corrupt_file_is_rebuilt(tmp_path: Path) -> None:
    paths = build_prompts(tmp_path)
    paths["exam_start"].unlink()
    paths["next_question"].write_bytes(b"not a wav")
    build_prompts(tmp_path)
    for cue in ("exam_start", "next_question"):
        params, samples = _read(paths[cue])
        assert params.nframes > 0 and np.abs(samples).max() > 0.05


def test_speed_change_rebuilds(tmp_path: Path) -> None:
    slow = build_prompts(tmp_path, speed=120)
    slow_frames = _read(slow["exam_start"])[0].nframes
    fast = build_prompts(tmp_path, speed=220)
    assert _read(fast["exam_start"])[0].nframes < slow_frames


def test_missing_espeak_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(VoiceError, match="espeak-ng"):
        build_prompts(tmp_path / "out")


def test_unknown_voice_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VoiceError, match="zzvoice"):
        build_prompts(tmp_path, voice="zzvoice")
    assert not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob(".*.tmp*"))


def test_main_prints_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert voice.main(["--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(CUES)
    for line in lines:
        cue, path = line.split("\t")
        assert cue in CUES and Path(path) == tmp_path / f"{cue}.wav" and Path(path).is_file()
