"""The kiosk unit's own command line under the cage compositor (issue 15, "The compositor").

cage runs headless (``WLR_BACKENDS=headless WLR_RENDERER=pixman``, no input devices) as an
unprivileged user (``nobody``: cage refuses root), with a runtime directory that user owns, the
installed policies (rig.py: a private mount namespace) and Chromium's own sandbox, as on a
station. Checked: the kiosk page loads (read through a debugging port on 127.0.0.1 added for the
test), cage is started without ``-s`` (no VT switching) and accepts the unit's command line, and
when the browser exits cage exits with it and the unit's restart brings the page back.

cage 0.1.4 has no virtual-keyboard protocol, so no key can be typed into it here (``wtype`` says
so): the key escapes are tried under Xvfb (test_escape.py).
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from provisioning import install_station
from station.kiosk.app import serve_kiosk
from station.runtime.runner import Runtime
from tests.services import free_port, wait_for
from tests.station.lockdown import rig
from tests.station.test_kiosk_requests import station_settings

USER = "nobody"
BACK_WITHIN = 5.0  # seconds, after RestartSec


@pytest.fixture(scope="module")
def kiosk_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cage-kiosk")
    port = free_port()
    runtime = Runtime(station_settings(tmp, port))
    server = serve_kiosk(runtime.kiosk, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        runtime.stop()


@pytest.fixture(scope="module")
def cage(kiosk_url, tmp_path_factory):
    missing = [tool for tool in ("cage", "Xwayland", "chromium", "unshare", "setpriv") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (scripts/install-system.sh installs cage and xwayland)")
    if os.geteuid() != 0:
        pytest.skip("the test switches to an unprivileged user and mounts the policies: it needs root")
    user = pwd.getpwnam(USER)
    root = tmp_path_factory.mktemp("cage-root")
    (root / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        shutil.copy2(Path("/etc") / name, root / "etc" / name)
    install_station.install(install_station.Target(root=root, kiosk_url=kiosk_url, units=install_station.DEFAULT_UNITS,
                                                   software="", packages=False), say=lambda line: None)
    # The user's own directories, outside pytest's private (0700) temporary tree.
    home = Path(tempfile.mkdtemp(prefix="examkiosk-cage-"))
    runtime_dir, profile = home / "run", home / "profile"
    runtime_dir.mkdir(mode=0o700)
    for path in (home, runtime_dir):
        os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    compositor, _ = rig.unit_command()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime_dir),
           "WLR_BACKENDS": "headless", "WLR_RENDERER": "pixman", "WLR_LIBINPUT_NO_DEVICES": "1",
           "XDG_SESSION_TYPE": "wayland"}

    def argv(url: str) -> list[str]:
        browser = rig.browser_argv(url, profile, port, ozone="wayland", sandbox=True)
        as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                   "env", "-i", *(f"{k}={v}" for k, v in env.items())]
        return rig.with_policies(root, [*as_user, compositor, "--", *browser])

    supervisor = rig.Supervisor(argv, profile, dict(env), root / "cage.log")
    supervisor.start(kiosk_url)
    try:
        yield supervisor, port, kiosk_url, root / "cage.log"
    finally:
        supervisor.stop()
        # The browser's sandboxed helpers leave a moment after cage: remove the directory once they are gone.
        wait_for(lambda: subprocess.run(["pgrep", "-f", str(profile)], capture_output=True).returncode != 0,
                 timeout=15, what="the browser's processes gone")
        shutil.rmtree(home, ignore_errors=True)


def test_cage_shows_the_kiosk_page_without_vt_switching(cage) -> None:
    supervisor, port, url, log = cage
    compositor, _ = rig.unit_command()
    cage_options = rig.parse_unit(rig.KIOSK_UNIT)["Service"]["ExecStart"][0].split(" -- ")[0].split()[1:]
    assert "-s" not in cage_options, "cage -s allows VT switching"
    wait_for(lambda: rig.shown_pages(port) == [url], timeout=60,
             what=f"the kiosk page under cage (log: {log.read_text()[-800:] if log.exists() else ''})")
    processes = subprocess.run(["ps", "-o", "user=,args=", "-C", "cage"], capture_output=True, text=True).stdout
    assert any(line.split()[0] == USER and " -s " not in line for line in processes.splitlines()), processes


def test_a_closed_browser_ends_cage_and_comes_back(cage) -> None:
    supervisor, port, url, log = cage
    wait_for(lambda: rig.shown_pages(port) == [url], timeout=60, what="the kiosk page under cage")
    starts = supervisor.starts
    cage_pid = supervisor.proc.pid  # unshare, which became sh, which became setpriv, env and cage
    children = subprocess.run(["pgrep", "-P", str(cage_pid)], capture_output=True, text=True).stdout.split()
    assert children, "no browser under cage"
    for child in children:
        os.kill(int(child), 15)  # the browser closes cleanly (exit 0), as Ctrl+W would close it
    wait_for(lambda: supervisor.starts > starts, timeout=15, what="cage ending with its browser and being restarted")
    wait_for(lambda: rig.shown_pages(port) == [url], timeout=BACK_WITHIN + rig.restart_delay(),
             what="the kiosk page back under the restarted cage")
