"""Run ``pg_ctl`` as the ``postgres`` system user when the tests run as root.

PostgreSQL refuses to run as root (``initdb`` and ``pg_ctl`` exit with "cannot be run as root"),
and the data directory pytest-postgresql makes lives under pytest's base temporary directory,
which is private to root (mode 0700), so the ``postgres`` user could not reach it either. This
wrapper stands in for ``pg_ctl``: it maps the data directory and log file the caller names to a
"shadow" directory under a base that the ``postgres`` user owns, and runs the real ``pg_ctl``
there as ``postgres`` (uid/gid switched by :mod:`subprocess`, supplementary groups dropped).

Usage (``conftest.py`` writes a small shell script that calls this)::

    python pg_as_postgres.py REAL_PG_CTL SHADOW_BASE [pg_ctl arguments...]

``pg_ctl --version`` runs directly. After ``initdb`` the caller's data directory is recreated
(empty, owned by root) so the caller's own checks and clean-up keep working; after ``stop`` the
shadow data directory is removed.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

PG_USER = "postgres"
_DATADIR_FLAGS = ("-D", "--pgdata")
_LOG_FLAGS = ("-l", "--log")


def shadow_for(base: Path, path: str) -> Path:
    digest = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
    return base / digest


def remap(args: list[str], base: Path) -> tuple[list[str], str | None, Path | None]:
    """Arguments with the data directory and log file moved under ``base``."""
    out: list[str] = []
    datadir: str | None = None
    shadow: Path | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        flag, sep, inline = arg.partition("=")
        if flag in _DATADIR_FLAGS + _LOG_FLAGS and (sep or i + 1 < len(args)):
            value = inline if sep else args[i + 1]
            if flag in _DATADIR_FLAGS:
                datadir = value
                shadow = shadow_for(base, value)
                mapped = str(shadow / "data")
            else:
                mapped = str(shadow_for(base, value)) + ".log"
            out += [f"{flag}={mapped}"] if sep else [flag, mapped]
            i += 1 if sep else 2
            continue
        out.append(arg)
        i += 1
    return out, datadir, shadow


def main(argv: list[str]) -> int:
    real, base_text, *args = argv
    if os.geteuid() != 0 or not args or args[0] in ("--version", "-V", "--help", "-?"):
        os.execv(real, [real, *args])
    base = Path(base_text)
    pg = pwd.getpwnam(PG_USER)
    mapped, datadir, shadow = remap(args, base)
    command = args[0]
    if command == "initdb" and shadow is not None:
        shutil.rmtree(shadow, ignore_errors=True)
        shadow.mkdir(mode=0o700, parents=True)
        os.chown(shadow, pg.pw_uid, pg.pw_gid)
    result = subprocess.run([real, *mapped], user=pg.pw_uid, group=pg.pw_gid, extra_groups=[],
                            cwd=base, check=False)
    if result.returncode == 0 and command == "initdb" and datadir is not None:
        Path(datadir).mkdir(parents=True, exist_ok=True)
        (Path(datadir) / "SHADOW").write_text(f"{shadow}\n")
    if result.returncode == 0 and command == "stop" and shadow is not None:
        shutil.rmtree(shadow, ignore_errors=True)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
