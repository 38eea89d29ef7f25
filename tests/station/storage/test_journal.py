"""The journal survives the process: state and segments come back from disk."""
from pathlib import Path

from station.flow import Event, FlowState, Screen, transition
from station.storage.journal import Journal


def test_state_and_segments_survive_reopening(tmp_path: Path):
    journal = Journal(tmp_path / "journal.db")
    assert journal.load_state() is None
    state, _ = transition(FlowState(), Event("identify", {"ticket_no": "20240001"}), 100.0)
    journal.save_state(state, 100.0)
    journal.touch_alive(105.0)
    for seq in range(3):
        journal.add_segment(name=f"a1_main_{seq:05d}.mkv", attempt_id="a1", camera="main", seq=seq, question=None,
                            path=tmp_path / f"{seq}.mkv", started_at=100.0 + seq * 3, ended_at=103.0 + seq * 3,
                            size=1000, sha256="0" * 64)
    journal.set_upload("a1_main_00000.mkv", url="http://edge/u/1", uploaded=500)
    journal.mark_verified("a1_main_00001.mkv")
    journal.close()

    again = Journal(tmp_path / "journal.db")
    restored, alive_at = again.load_state()
    assert restored == state and alive_at == 105.0
    assert restored.screen == Screen.IDENTIFY and restored.busy
    assert again.next_seq("a1", "main") == 3 and again.next_seq("a1", "second") == 0
    assert [s.name for s in again.pending()] == ["a1_main_00000.mkv", "a1_main_00002.mkv"]
    assert again.pending()[0].upload_url == "http://edge/u/1"
    assert again.progress("a1") == (1500, 3000, 1, 3)


def test_outbox_keeps_events_until_delivered(tmp_path: Path):
    journal = Journal(tmp_path / "journal.db")
    journal.enqueue_event("interruption", {"count": 1}, "a1")
    journal.enqueue_event("disk_low", {"free": 5}, None)
    journal.close()
    again = Journal(tmp_path / "journal.db")
    pending = again.pending_events()
    assert [(k, p, a) for _, k, p, a in pending] == [("interruption", {"count": 1}, "a1"), ("disk_low", {"free": 5}, None)]
    again.event_delivered(pending[0][0])
    assert [k for _, k, _, _ in again.pending_events()] == ["disk_low"]
