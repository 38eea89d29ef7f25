"""What the player shows of a manifest (pure): questions in order with their main and evidence
files, and each flag at its offset into the question's file, clipped to it."""
from __future__ import annotations

from examkiosk_wire.central import AttemptManifest
from region_server.review import timeline


def manifest(flags, questions=None) -> AttemptManifest:
    files = questions if questions is not None else [
        {"key": "c/s/lot-001/questions/main_q2.mp4", "camera": "main", "question": 2, "duration": 10.0, "offset": 200.0},
        {"key": "c/s/lot-001/questions/main_q1.mp4", "camera": "main", "question": 1, "duration": 10.0, "offset": 100.0},
        {"key": "c/s/lot-001/questions/second_q1.mp4", "camera": "second", "question": 1, "duration": 10.0,
         "offset": 100.0},
        {"key": "c/s/lot-001/questions/main_waiting.mp4", "camera": "main", "question": None, "duration": 60.0,
         "offset": 0.0},
    ]
    return AttemptManifest.model_validate({
        "format": "examkiosk-manifest/1", "centre": "c", "sitting": "s", "attempt": "a1", "lot": 1, "flags": flags,
        "questions": [{"sha256": "0" * 64, "size": 1, **q} for q in files]})


def test_questions_in_order_with_main_and_evidence_files():
    views = timeline.questions(manifest([]))
    assert [(v.number, v.main.camera, v.evidence.camera if v.evidence else None) for v in views] == \
        [(1, "main", "second"), (2, "main", None)]  # the waiting room is not a question
    assert views[0].label == "第1题 Question 1"
    assert timeline.media_object(manifest([]), "second_q1.mp4").camera == "second"
    assert timeline.media_object(manifest([]), "lots.json") is None


def test_flags_are_placed_at_their_offset_into_the_file_and_clipped_to_it():
    flags = [
        {"kind": "no_face", "started_at": 103.0, "ended_at": 104.5},
        {"kind": "several_faces", "started_at": 95.0, "ended_at": 101.0},  # began before the question
        {"kind": "mic_silent", "started_at": 108.0, "ended_at": 130.0},  # runs past its end
        {"kind": "loud_noise", "started_at": 150.0, "ended_at": 151.0},  # between questions: on neither
        {"kind": "focus_lost", "started_at": 201.5},  # no end: a point
        {"kind": "ended_early"},  # no time: on no timeline
    ]
    views = timeline.questions(manifest(flags))
    assert [(m.kind, m.at, m.end) for m in views[0].marks] == \
        [("several_faces", 0.0, 1.0), ("no_face", 3.0, 4.5), ("mic_silent", 8.0, 10.0)]
    assert [(m.kind, m.at, m.end, m.label) for m in views[1].marks] == \
        [("focus_lost", 1.5, 1.5, "离开考试页面 focus lost")]
    assert views[0].marks[1].key == "no_face@103.000"
    assert timeline.flag_label("something_new") == "something_new"


def test_a_file_without_an_offset_has_no_marks():
    questions = [{"key": "c/s/lot-001/questions/main_q1.mp4", "camera": "main", "question": 1, "duration": 5.0}]
    views = timeline.questions(manifest([{"kind": "no_face", "started_at": 1.0}], questions))
    assert views[0].marks == [] and views[0].evidence is None
