"""``examkiosk-provision install-station [--check] [--kiosk-url URL] [--root DIR] [--no-packages]``:
make a fresh Debian 12 / Raspberry Pi OS Bookworm machine a station that boots into the locked kiosk.

What it installs, in order (each part is checked first and changed only when it differs):

1. Debian packages: cage, xwayland, chromium, fonts-noto-cjk, python3-venv; on a Raspberry Pi
   python3-picamera2 from the OS (the venv then sees it through ``--system-site-packages``).
2. The Python environment the units run (``/opt/examkiosk/venv``) with the station software.
3. The users ``kiosk`` and ``examkiosk`` (provisioning/station_accounts.py).
4. The units ``examkiosk-station.service`` and ``examkiosk-kiosk.service`` (from ``systemd/``; the
   kiosk unit shows ``--kiosk-url``) in ``/etc/systemd/system``.
5. The kiosk browser's managed policies (provisioning/kiosk_policy.py), built from the kiosk URL's
   origin, in ``/etc/chromium/policies/managed/examkiosk.json``.
6. Booting straight into the kiosk, with no login on a getty: both units enabled, the default
   target ``graphical.target``, ``getty@tty1`` masked (the kiosk owns tty1, so no autologin there
   either) and no display manager enabled to take the screen.

``--check`` changes nothing: it prints what is missing or different and exits 1 if anything is
(0 when the station is as it should be). A second install changes nothing and says so.
``--root DIR`` installs into a machine image or a test directory instead of ``/``;
``--no-packages`` leaves out parts 1 and 2 (nothing is downloaded).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from provisioning import kiosk_policy, station_accounts

CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_UNITS = CHECKOUT / "systemd"
STATION_UNITS = ("examkiosk-station.service", "examkiosk-kiosk.service")
KIOSK_UNIT = "examkiosk-kiosk.service"
UNIT_KIOSK_URL = kiosk_policy.DEFAULT_KIOSK_URL  # what the kiosk unit in systemd/ shows
PACKAGES = ("cage", "xwayland", "chromium", "fonts-noto-cjk", "python3-venv")
PI_PACKAGES = ("python3-picamera2",)
VENV = "opt/examkiosk/venv"
DEFAULT_TARGET = "/lib/systemd/system/graphical.target"
MASKED = ("getty@tty1.service",)
DISPLAY_MANAGER = "display-manager.service"


class InstallFailed(Exception):
    """The install stopped; the message is the one line the operator reads."""


@dataclass(frozen=True)
class Part:
    """One thing the station must have: ``check`` says how it differs (empty: as it should be),
    ``apply`` makes it so and says what it did."""

    name: str
    check: Callable[[], list[str]]
    apply: Callable[[], list[str]]


@dataclass(frozen=True)
class Target:
    root: Path
    kiosk_url: str
    units: Path
    software: str
    packages: bool

    def path(self, relative: str) -> Path:
        return self.root / relative.lstrip("/")


def is_raspberry_pi(root: Path) -> bool:
    model = root / "proc/device-tree/model"
    try:
        return "raspberry pi" in model.read_text(errors="replace").lower()
    except OSError:
        return False


# --- 1 and 2: packages and the Python environment ---------------------------------------------

def wanted_packages(target: Target) -> list[str]:
    return [*PACKAGES, *(PI_PACKAGES if is_raspberry_pi(target.root) else ())]


def missing_packages(target: Target) -> list[str]:
    admin = ["--admindir", str(target.path("var/lib/dpkg"))]
    missing = []
    for package in wanted_packages(target):
        result = subprocess.run(["dpkg-query", *admin, "-W", "-f=${Status}", package], capture_output=True,
                                text=True, check=False)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def install_packages(target: Target) -> list[str]:
    missing = missing_packages(target)
    if not missing:
        return []
    if target.root != Path("/"):
        raise InstallFailed(f"cannot install Debian packages into {target.root}: install {' '.join(missing)} "
                            f"there yourself, or run with --no-packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        if subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, check=False).returncode != 0:
            raise InstallFailed(f"{' '.join(argv)} failed (see its output above)")
    return [f"installed Debian packages: {' '.join(missing)}"]


def venv_problems(target: Target) -> list[str]:
    station = target.path(VENV) / "bin/examkiosk-station"
    return [] if station.is_file() else [f"missing: the Python environment /{VENV} with the station software"]


def make_venv(target: Target) -> list[str]:
    venv = target.path(VENV)
    create = [sys.executable if shutil.which("python3") is None else "python3", "-m", "venv", str(venv)]
    if is_raspberry_pi(target.root):
        create.insert(-1, "--system-site-packages")  # picamera2 and libcamera come from the OS
    for argv in (create, [str(venv / "bin/pip"), "install", "--quiet", target.software]):
        if subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode != 0:
            raise InstallFailed(f"{' '.join(argv)} failed (see its output above)")
    return [f"made the Python environment /{VENV} with {target.software}"]


# --- 4 and 5: files -------------------------------------------------------------------------------

def unit_text(target: Target, name: str) -> str:
    source = target.units / name
    try:
        text = source.read_text()
    except FileNotFoundError as exc:
        raise InstallFailed(f"no unit {name} in {target.units} (give the checkout's systemd/ with --units)") from exc
    if name == KIOSK_UNIT:
        if UNIT_KIOSK_URL not in text:
            raise InstallFailed(f"{source} does not show {UNIT_KIOSK_URL}: cannot point it at {target.kiosk_url}")
        text = text.replace(UNIT_KIOSK_URL, target.kiosk_url)
    return text


def wanted_files(target: Target) -> dict[str, str]:
    """``{path under the root: text}`` of every file the station needs from us."""
    files = {f"etc/systemd/system/{name}": unit_text(target, name) for name in STATION_UNITS}
    policies = kiosk_policy.kiosk_policies(target.kiosk_url)
    files[f"{kiosk_policy.POLICY_DIR}/{kiosk_policy.POLICY_FILE}"] = kiosk_policy.dump(policies)
    return files


def file_problems(target: Target, relative: str, text: str) -> list[str]:
    path = target.path(relative)
    if not path.is_file():
        return [f"missing: /{relative}"]
    installed = path.read_text(errors="replace")
    if relative.startswith(kiosk_policy.POLICY_DIR):
        expected = kiosk_policy.kiosk_policies(target.kiosk_url)
        found = [f"different: /{relative}: policy {line}" for line in kiosk_policy.differences(expected, installed)]
        if not found and installed != text:
            found = [f"different: /{relative} is not laid out as examkiosk writes it"]
    else:
        found = [] if installed == text else [f"different: /{relative} is not the unit examkiosk ships"]
    if path.stat().st_mode & 0o022:
        found.append(f"different: /{relative} is writable by others than its owner")
    return found


def write_file(target: Target, relative: str, text: str) -> list[str]:
    path = target.path(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    existed = path.exists()
    os.replace(tmp, path)
    return [f"{'replaced' if existed else 'wrote'} /{relative}"]


# --- 6: boot into the kiosk ----------------------------------------------------------------------

def wanted_by(text: str) -> list[str]:
    """The targets a unit's ``[Install] WantedBy=`` names (what ``systemctl enable`` links it into)."""
    section, targets = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Install]" and line.startswith("WantedBy="):
            targets += line.partition("=")[2].split()
    return targets


def wanted_links(target: Target) -> dict[str, str]:
    """``{link under the root: what it points at}``: the enabled units, the default target, the masks."""
    links = {}
    for name in STATION_UNITS:
        for wanting in wanted_by(unit_text(target, name)):
            links[f"etc/systemd/system/{wanting}.wants/{name}"] = f"/etc/systemd/system/{name}"
    links["etc/systemd/system/default.target"] = DEFAULT_TARGET
    links.update({f"etc/systemd/system/{name}": "/dev/null" for name in MASKED})
    return links


def boot_problems(target: Target) -> list[str]:
    found = []
    for relative, points_at in wanted_links(target).items():
        link = target.path(relative)
        if not link.is_symlink():
            found.append(f"missing: /{relative} -> {points_at}")
        elif os.readlink(link) != points_at:
            found.append(f"different: /{relative} points at {os.readlink(link)}, should be {points_at}")
    manager = target.path(f"etc/systemd/system/{DISPLAY_MANAGER}")
    if manager.is_symlink() or manager.exists():
        shown = os.readlink(manager) if manager.is_symlink() else "a unit file"
        found.append(f"different: a display manager is enabled (/etc/systemd/system/{DISPLAY_MANAGER} -> {shown}); "
                     f"it would take the kiosk's screen")
    return found


def make_boot(target: Target) -> list[str]:
    done = []
    for relative, points_at in wanted_links(target).items():
        link = target.path(relative)
        if link.is_symlink() and os.readlink(link) == points_at:
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(points_at)
        done.append(f"linked /{relative} -> {points_at}")
    manager = target.path(f"etc/systemd/system/{DISPLAY_MANAGER}")
    if manager.is_symlink():
        done.append(f"disabled the display manager {os.readlink(manager)}")
        manager.unlink()
    if done and target.root == Path("/") and Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "daemon-reload"], check=False)
        done.append("reloaded systemd")
    return done


# --- the whole install ---------------------------------------------------------------------------

def parts(target: Target) -> list[Part]:
    found: list[Part] = []
    if target.packages:
        found += [Part("packages", lambda: [f"missing: Debian package {p}" for p in missing_packages(target)],
                       lambda: install_packages(target)),
                  Part("python", lambda: venv_problems(target), lambda: make_venv(target))]
    for account in station_accounts.ACCOUNTS:
        found.append(Part(f"user {account.name}", lambda a=account: station_accounts.problems(target.root, a),
                          lambda a=account: station_accounts.apply(target.root, a)))
    for relative, text in wanted_files(target).items():
        found.append(Part(relative, lambda r=relative, t=text: file_problems(target, r, t),
                          lambda r=relative, t=text: write_file(target, r, t)))
    found.append(Part("boot", lambda: boot_problems(target), lambda: make_boot(target)))
    return found


def check(target: Target) -> list[str]:
    """Everything missing or different, one line each (empty: the station is as it should be)."""
    return [line for part in parts(target) for line in part.check()]


def install(target: Target, say: Callable[[str], None]) -> list[str]:
    """Make every part as it should be; what was done (empty: nothing needed changing)."""
    done = []
    for part in parts(target):
        if part.check():
            for line in part.apply():
                say(line)
                done.append(line)
    left = [line for line in check(target) if "sudo grants" not in line]
    if left:
        raise InstallFailed(f"still not as it should be after installing: {'; '.join(left)}")
    return done


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("install-station", help="make this machine a locked kiosk station",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; report what is missing or different")
    parser.add_argument("--kiosk-url", default=kiosk_policy.DEFAULT_KIOSK_URL,
                        help=f"the page the kiosk shows; its origin is the only one allowed ({UNIT_KIOSK_URL})")
    parser.add_argument("--root", type=Path, default=Path("/"), help="install into this directory (/)")
    parser.add_argument("--no-packages", action="store_true",
                        help="leave out the Debian packages and the Python environment")
    parser.add_argument("--units", type=Path, default=DEFAULT_UNITS, help=f"the unit files ({DEFAULT_UNITS})")
    parser.add_argument("--software", default=str(CHECKOUT),
                        help="what pip installs into the Python environment (a wheel or a source tree; this checkout)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        kiosk_policy.kiosk_origin(args.kiosk_url)
        target = Target(root=args.root.resolve(), kiosk_url=args.kiosk_url, units=args.units,
                        software=args.software, packages=not args.no_packages)
        if args.check:
            problems = check(target)
            for line in problems:
                print(line, flush=True)
            if problems:
                print(f"{len(problems)} thing(s) to fix: run examkiosk-provision install-station", flush=True)
                return 1
            print(f"ok: the station in {target.root} is installed as it should be", flush=True)
            return 0
        if not args.no_packages and target.root == Path("/") and os.geteuid() != 0:
            raise InstallFailed("run as root (it installs packages, users and units)")
        done = install(target, lambda line: print(line, flush=True))
    except (InstallFailed, kiosk_policy.BadKioskUrl, station_accounts.AccountFailed) as exc:
        print(f"examkiosk-provision: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, kiosk_policy.BadKioskUrl) else 1
    if done:
        print(f"installed: {len(done)} change(s); the kiosk starts at the next boot", flush=True)
    else:
        print("nothing to change: the station is already installed as it should be", flush=True)
    return 0
