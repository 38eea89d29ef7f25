"""What the review player shows of one attempt, computed from its manifest (pure: no I/O).

Each question has one file per camera (``<camera>_q<N>.mp4``); the main camera (``main``) drives
the clock and gives the sound, the first other camera is the evidence camera. A flag is drawn on a
question's timeline at ``flag.started_at - question.offset`` (both in server time), clipped to the
file, when its interval overlaps the file. Nothing here names the candidate: the views carry only
lots, question numbers, camera names, flag kinds and times.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from examkiosk_wire.central import AttemptManifest, Flag, QuestionObject

MAIN_CAMERA = "main"

# Flag kinds as people read them (Chinese first); an unknown kind is shown as it is.
FLAG_LABELS = {
    "no_face": "无人脸 no face",
    "several_faces": "多人脸 several faces",
    "face_mismatch": "人脸不符 face mismatch",
    "face_covered": "人脸遮挡 face covered",
    "camera_lost": "摄像头中断 camera lost",
    "mic_silent": "麦克风无声 microphone silent",
    "loud_noise": "噪声过大 loud noise",
    "focus_lost": "离开考试页面 focus lost",
    "ended_early": "提前结束 ended early",
}


def flag_label(kind: str) -> str:
    return FLAG_LABELS.get(kind, kind)


def flag_key(flag: Flag) -> str:
    """A flag's stable name within its attempt (kind and start), used to store decisions about it."""
    start = "-" if flag.started_at is None else f"{flag.started_at:.3f}"
    return f"{flag.kind}@{start}"


@dataclass(frozen=True)
class FlagMark:
    """A flag as drawn on one question's timeline: seconds from the start of that question's file."""

    key: str
    kind: str
    label: str
    at: float
    end: float


@dataclass(frozen=True)
class QuestionView:
    number: int
    label: str
    main: QuestionObject | None
    evidence: QuestionObject | None
    duration: float | None
    marks: list[FlagMark] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        return f"q{self.number}"


def question_label(number: int) -> str:
    return f"第{number}题 Question {number}"


def marks_for(question: QuestionObject | None, flags: list[Flag]) -> list[FlagMark]:
    """The flags that overlap ``question``'s file, as offsets into it (none if the file has no offset)."""
    if question is None or question.offset is None:
        return []
    length = question.duration if question.duration is not None else float("inf")
    marks = []
    for flag in flags:
        if flag.started_at is None:
            continue
        start = flag.started_at - question.offset
        end = (flag.ended_at if flag.ended_at is not None else flag.started_at) - question.offset
        if end < 0 or start > length:
            continue
        at = min(max(start, 0.0), length)
        marks.append(FlagMark(key=flag_key(flag), kind=flag.kind, label=flag_label(flag.kind), at=round(at, 3),
                              end=round(min(max(end, at), length), 3)))
    return sorted(marks, key=lambda m: (m.at, m.key))


def questions(manifest: AttemptManifest) -> list[QuestionView]:
    """Every numbered question with a file, in order, with its main and evidence files and flag marks."""
    by_number: dict[int, dict[str, QuestionObject]] = {}
    for q in manifest.questions:
        if q.question is not None:
            by_number.setdefault(q.question, {})[q.camera] = q
    views = []
    for number in sorted(by_number):
        files = by_number[number]
        main = files.get(MAIN_CAMERA)
        others = sorted(camera for camera in files if camera != MAIN_CAMERA)
        evidence = files[others[0]] if others else None
        clock = main or evidence
        views.append(QuestionView(number=number, label=question_label(number), main=main, evidence=evidence,
                                  duration=clock.duration if clock else None,
                                  marks=marks_for(clock, manifest.flags)))
    return views


def question(manifest: AttemptManifest, number: int) -> QuestionView | None:
    return next((v for v in questions(manifest) if v.number == number), None)


def media_object(manifest: AttemptManifest, name: str) -> QuestionObject | None:
    """The question file called ``name`` (``main_q1.mp4``) of this attempt, or None."""
    for q in manifest.questions:
        if q.key.rsplit("/", 1)[-1] == name:
            return q
    return None
