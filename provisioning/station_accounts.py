"""The station's two system users, read from and written to a root's account files.

- ``kiosk`` runs the compositor and the browser (the kiosk unit's ``User=``): no login shell, no
  sudo, no home of its own on disk. Its home is the kiosk unit's runtime directory
  (``/run/examkiosk-kiosk``), which systemd creates empty at every start and deletes at every
  stop; the browser profile lives there and nowhere else.
- ``examkiosk`` runs the station agent (the station unit's ``User=``), with the camera and the
  microphone; its home is the agent's state directory, which the unit's ``StateDirectory=`` makes.

The accounts are read straight from ``ROOT/etc/passwd`` and ``ROOT/etc/group`` (pure parsing), and
written with Debian's ``useradd``/``usermod``, given ``--prefix ROOT`` when the root is not ``/``
(they then edit that root's files with no chroot, as for a machine's image on disk).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

NOLOGIN = "/usr/sbin/nologin"
# Groups that would let an account administer the machine: the kiosk users are in none of them.
ADMIN_GROUPS = frozenset({"sudo", "adm", "wheel", "root", "staff", "disk", "shadow"})


@dataclass(frozen=True)
class Account:
    """What a station user must look like. ``groups`` are joined where the root has them (a
    container has no ``render`` group, a Pi has): the rest is not this machine's."""

    name: str
    home: str
    groups: tuple[str, ...]
    comment: str


KIOSK = Account("kiosk", "/run/examkiosk-kiosk", ("video", "render", "input", "audio"),
                "examkiosk kiosk screen")
AGENT = Account("examkiosk", "/var/lib/examkiosk-station", ("video", "audio"), "examkiosk station agent")
ACCOUNTS = (KIOSK, AGENT)


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


def parse_passwd(text: str) -> dict[str, PasswdEntry]:
    """``/etc/passwd`` by user name (lines that are not seven fields are skipped)."""
    entries = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) != 7 or not fields[2].isdigit() or not fields[3].isdigit():
            continue
        entries[fields[0]] = PasswdEntry(fields[0], int(fields[2]), int(fields[3]), fields[5], fields[6])
    return entries


def parse_groups(text: str) -> dict[str, tuple[int, frozenset[str]]]:
    """``/etc/group`` as ``{group: (gid, members)}``."""
    groups = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) != 4 or not fields[2].isdigit():
            continue
        groups[fields[0]] = (int(fields[2]), frozenset(m for m in fields[3].split(",") if m))
    return groups


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def sudo_rules_naming(root: Path, user: str) -> list[str]:
    """Lines of ``ROOT/etc/sudoers`` and ``sudoers.d/*`` that grant ``user`` anything."""
    files = [root / "etc/sudoers", *sorted((root / "etc/sudoers.d").glob("*"))]
    pattern = re.compile(rf"^\s*{re.escape(user)}\s")
    return [f"{path.relative_to(root)}: {line.strip()}" for path in files if path.is_file()
            for line in _read(path).splitlines() if pattern.match(line)]


def wanted_groups(account: Account, groups: dict[str, tuple[int, frozenset[str]]]) -> list[str]:
    return [group for group in account.groups if group in groups]


def problems(root: Path, account: Account) -> list[str]:
    """How the account in ``root`` differs from ``account`` (empty: as it should be)."""
    passwd = parse_passwd(_read(root / "etc/passwd"))
    groups = parse_groups(_read(root / "etc/group"))
    entry = passwd.get(account.name)
    if entry is None:
        return [f"missing: user {account.name}"]
    found = []
    if entry.shell != NOLOGIN:
        found.append(f"different: user {account.name} has the shell {entry.shell!r}, should be {NOLOGIN}")
    if entry.home != account.home:
        found.append(f"different: user {account.name} has the home {entry.home!r}, should be {account.home}")
    member_of = {name for name, (gid, members) in groups.items() if account.name in members or gid == entry.gid}
    admin = sorted(member_of & ADMIN_GROUPS)
    if admin:
        found.append(f"different: user {account.name} is in the group(s) {', '.join(admin)} (no administration)")
    lacking = [group for group in wanted_groups(account, groups) if group not in member_of]
    if lacking:
        found.append(f"missing: user {account.name} in the group(s) {', '.join(lacking)}")
    found += [f"different: sudo grants {account.name}: {rule}" for rule in sudo_rules_naming(root, account.name)]
    return found


def _prefix(root: Path) -> list[str]:
    return [] if root == Path("/") else ["--prefix", str(root)]


def commands(root: Path, account: Account) -> list[list[str]]:
    """What makes the account in ``root`` as it should be: ``useradd`` for a missing user, else
    ``usermod`` setting its shell, home and exactly its groups (which drops any admin group).
    Sudo rules naming the user are not edited here: the check names them for a person to remove."""
    passwd = parse_passwd(_read(root / "etc/passwd"))
    groups = parse_groups(_read(root / "etc/group"))
    joined = ",".join(wanted_groups(account, groups))
    if account.name not in passwd:
        make = ["useradd", *_prefix(root), "--system", "--no-create-home", "--home-dir", account.home,
                "--shell", NOLOGIN, "--comment", account.comment]
        # Its own group: the one named like it when the root has it (left by an earlier install), else a new one.
        make += ["--gid", account.name] if account.name in groups else ["--user-group"]
        return [make + (["--groups", joined] if joined else []) + [account.name]]
    return [["usermod", *_prefix(root), "--shell", NOLOGIN, "--home", account.home, "--groups", joined,
             account.name]]


class AccountFailed(RuntimeError):
    """useradd or usermod refused; the message carries its own words."""


def apply(root: Path, account: Account) -> list[str]:
    """Make the account as it should be; what was done, one line per command."""
    done = []
    for argv in commands(root, account):
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        if result.returncode != 0:
            raise AccountFailed(f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()}")
        done.append(f"{'created' if argv[0] == 'useradd' else 'updated'} user {account.name} "
                    f"(shell {NOLOGIN}, home {account.home})")
    return done
