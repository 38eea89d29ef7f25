"""``examkiosk-provision install-station`` into a temporary root (issue 15, "install-station").

The root starts as a fresh machine's account files (copies of this machine's passwd, group,
shadow and gshadow); the real ``useradd``/``usermod`` write the users into it with ``--prefix``,
so this machine's own /etc is never touched. Debian packages and the venv are left out
(``--no-packages``). Checked: ``--check`` names everything missing, an install makes it all as it
should be, a second install changes nothing, and a changed policy, unit or user is named by
``--check`` and put right by the next install.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning import kiosk_policy
from provisioning.station_accounts import parse_groups, parse_passwd
from tests.station.lockdown.rig import KIOSK_UNIT, parse_unit, unit_command

KIOSK_URL = "http://127.0.0.1:8700/"
POLICY = Path("etc/chromium/policies/managed/examkiosk.json")


def provision(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioning.cli", "install-station", "--root", str(root),
                           "--no-packages", *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    if shutil.which("useradd") is None:
        pytest.skip("useradd not installed (Debian package 'passwd')")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        shutil.copy2(Path("/etc") / name, tmp_path / "etc" / name)
    return tmp_path


def test_a_fresh_root_is_installed_once_and_then_left_alone(root: Path) -> None:
    before = provision(root, "--check")
    assert before.returncode == 1
    for missing in ("missing: user kiosk", "missing: user examkiosk", f"missing: /{POLICY}",
                    "missing: /etc/systemd/system/examkiosk-kiosk.service",
                    "missing: /etc/systemd/system/getty@tty1.service -> /dev/null"):
        assert missing in before.stdout, before.stdout

    first = provision(root)
    assert first.returncode == 0, first.stderr
    assert "created user kiosk" in first.stdout and f"wrote /{POLICY}" in first.stdout
    assert "installed:" in first.stdout

    again = provision(root)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "nothing to change: the station is already installed as it should be"
    check = provision(root, "--check")
    assert check.returncode == 0 and check.stdout.startswith("ok:"), check.stdout

    users = parse_passwd((root / "etc/passwd").read_text())
    assert users["kiosk"].shell == users["examkiosk"].shell == "/usr/sbin/nologin"
    assert users["kiosk"].home == "/run/examkiosk-kiosk"  # the unit's runtime directory, wiped every start
    groups = parse_groups((root / "etc/group").read_text())
    assert "kiosk" not in groups["sudo"][1] and "examkiosk" in groups["video"][1]
    assert "kiosk" not in Path("/etc/passwd").read_text().split(":"), "this machine's own users were touched"

    policies = json.loads((root / POLICY).read_text())
    assert policies == kiosk_policy.kiosk_policies(KIOSK_URL)
    assert policies["URLAllowlist"] == ["http://127.0.0.1:8700"]
    assert {"*", "chrome://*", "file://*"} <= set(policies["URLBlocklist"])
    wants = root / "etc/systemd/system/graphical.target.wants/examkiosk-kiosk.service"
    assert wants.is_symlink() and str(wants.readlink()) == "/etc/systemd/system/examkiosk-kiosk.service"
    assert str((root / "etc/systemd/system/default.target").readlink()).endswith("/graphical.target")


def test_a_changed_policy_unit_or_user_is_named_and_then_put_right(root: Path) -> None:
    assert provision(root).returncode == 0
    policy = json.loads((root / POLICY).read_text())
    policy["DeveloperToolsAvailability"] = 0
    policy["URLAllowlist"] = ["*"]
    policy["SomeoneElses"] = True
    (root / POLICY).write_text(json.dumps(policy))
    unit = root / "etc/systemd/system/examkiosk-kiosk.service"
    unit.write_text(unit.read_text().replace("--kiosk", "--kiosk --remote-debugging-port=9222"))
    (root / "etc/systemd/system/getty@tty1.service").unlink()
    subprocess.run(["usermod", "--prefix", str(root), "--shell", "/bin/bash", "-aG", "sudo", "kiosk"], check=True)

    check = provision(root, "--check")
    assert check.returncode == 1
    out = check.stdout
    assert "policy DeveloperToolsAvailability is 0, should be 2" in out, out
    assert 'policy URLAllowlist is ["*"], should be ["http://127.0.0.1:8700"]' in out, out
    assert "policy SomeoneElses is set but not ours" in out, out
    assert "different: /etc/systemd/system/examkiosk-kiosk.service is not the unit examkiosk ships" in out
    assert "missing: /etc/systemd/system/getty@tty1.service -> /dev/null" in out
    assert "user kiosk has the shell '/bin/bash'" in out and "user kiosk is in the group(s) sudo" in out

    fixed = provision(root)
    assert fixed.returncode == 0, fixed.stderr
    assert f"replaced /{POLICY}" in fixed.stdout and "updated user kiosk" in fixed.stdout
    assert provision(root, "--check").returncode == 0
    assert json.loads((root / POLICY).read_text())["DeveloperToolsAvailability"] == 2
    assert "kiosk" not in parse_groups((root / "etc/group").read_text())["sudo"][1]


def test_the_kiosk_url_sets_the_unit_and_the_only_allowed_origin(root: Path) -> None:
    assert provision(root, "--kiosk-url", "http://localhost:8711/").returncode == 0
    unit = (root / "etc/systemd/system/examkiosk-kiosk.service").read_text()
    assert "http://localhost:8711/" in unit and "127.0.0.1:8700" not in unit
    assert json.loads((root / POLICY).read_text())["URLAllowlist"] == ["http://localhost:8711"]
    bad = provision(root, "--kiosk-url", "file:///etc/passwd")
    assert bad.returncode == 2 and "the kiosk URL must be http" in bad.stderr


def test_policy_differences_name_each_policy() -> None:
    expected = kiosk_policy.kiosk_policies(KIOSK_URL)
    assert kiosk_policy.differences(expected, kiosk_policy.dump(expected)) == []
    assert kiosk_policy.differences(expected, "{")[0].startswith("not JSON")
    lacking = dict(expected)
    del lacking["PrintingEnabled"]
    assert kiosk_policy.differences(expected, json.dumps(lacking)) == ["PrintingEnabled missing (should be false)"]
    assert kiosk_policy.kiosk_origin("http://[::1]:8700/x") == "http://[::1]:8700"


def test_the_kiosk_unit_wipes_the_profile_restarts_always_and_has_no_debugging() -> None:
    unit = parse_unit(KIOSK_UNIT)
    service = unit["Service"]
    _, browser = unit_command()
    (start,) = service["ExecStart"]
    assert "-s" not in start.split(" -- ")[0].split(), "cage -s would allow VT switching"
    assert not any("remote-debugging" in arg for arg in browser)
    assert service["RuntimeDirectory"] == ["examkiosk-kiosk"]
    assert "--user-data-dir=/run/examkiosk-kiosk/profile" in browser
    assert service["ExecStartPre"] == ["/bin/rm -rf /run/examkiosk-kiosk/profile"]
    assert service["RestartForceExitStatus"] == ["0"] and unit["Unit"]["StartLimitIntervalSec"] == ["0"]
