"""The start-up every program shares (examkiosk_wire.program), run as a real process: SIGTERM stops it
in its own time, SIGUSR1 prints where each thread is without stopping it, a bad setting exits 2."""
from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

PROGRAM = r'''
import sys, threading
from examkiosk_wire.program import program_parser, run_program

class BadSetting(Exception):
    pass

def load():
    if sys.argv[1:] == ["--bad"]:
        raise BadSetting("[edge] port: not a number")
    return {}

def run(settings, args, stop):
    inside = threading.Event()
    def waiting_in_the_worker():
        inside.set()
        stop.wait()
    worker = threading.Thread(target=waiting_in_the_worker, name="worker")
    worker.start()
    inside.wait()
    print("running", flush=True)  # the worker is in its function now
    worker.join()
    print("stopped", flush=True)
    return 0

parser = program_parser("example")
parser.add_argument("--bad", action="store_true")
sys.exit(run_program(parser, load, run, config_error=BadSetting))
'''


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PROGRAM, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigusr1_prints_every_thread_and_sigterm_stops() -> None:
    proc = start()
    try:
        assert proc.stdout.readline().strip() == "running"
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
        proc.send_signal(signal.SIGUSR1)
        stacks: list[str] = []
        deadline = time.monotonic() + 30
        while not any("waiting_in_the_worker" in line for line in stacks):
            left = deadline - time.monotonic()
            assert left > 0, f"no stack of the worker within 30 s of SIGUSR1: {stacks}"
            try:
                stacks.append(lines.get(timeout=left))
            except queue.Empty:
                continue
        assert proc.poll() is None, "SIGUSR1 must not stop the program"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)  # its output is a few lines: the pipe cannot fill
        out = proc.stdout.read()
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "stopped" in out


def test_a_bad_setting_exits_2_naming_it() -> None:
    proc = start("--bad")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "[edge] port: not a number" in err
    assert "running" not in out
