"""The start-up every program shares (examkiosk_wire.program), run as a real process: a bad setting
exits 2 naming it, before the program runs."""
from __future__ import annotations

import subprocess
import sys

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


def test_a_bad_setting_exits_2_naming_it() -> None:
    proc = start("--bad")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "[edge] port: not a number" in err
    assert "running" not in out
