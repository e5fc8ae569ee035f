"""A throwaway PostgreSQL server for the ledger tests (Debian's ``postgresql`` package).

:class:`PgServer` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` in a temp
dir, listening on a free port on 127.0.0.1 with its socket in that dir. PostgreSQL refuses to
run as root, so as root it runs as the ``postgres`` user (``runuser``). :func:`start_or_reason`
gives the reason it cannot start (no server installed, no ``postgres`` user, no driver) so that
the tests skip saying why. ``make unit`` installs the server (``make postgresql``).
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install postgresql (or `make postgresql` as root)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl, if any."""
    found = [
        Path(p).parent
        for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if (Path(p).parent / "pg_ctl").is_file()
    ]
    return max(
        found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None
    )


class PgServer:
    """A PostgreSQL cluster in a temp dir; :meth:`start`, :meth:`create_database`,
    :meth:`stop`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cropcredit-pg-"))
        self.data = self.root / "data"
        self.log_file = self.root / "server.log"
        self._as: list[str] = []
        self._n = 0
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 120) -> None:
        proc = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if proc.returncode != 0:
            tail = self.log_file.read_text()[-1500:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{Path(args[0]).name} exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-1500:]} {tail}"
            )

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c max_connections=50"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log_file),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )
        log.info("postgresql on 127.0.0.1:%d (%s)", self.port, self.root)

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        self._n += 1
        name = f"ledger_{self._n}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                    timeout=60,
                )
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                log.warning("stopping postgresql failed: %s", exc)
        shutil.rmtree(self.root, ignore_errors=True)


def start_or_reason() -> tuple[PgServer | None, str]:
    """A started server, or None and the reason it could not start."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg is not installed (pip install 'psycopg[binary]')"
    bin_dir = pg_bin()
    if bin_dir is None:
        return None, f"no PostgreSQL server in /usr/lib/postgresql/*/bin; {INSTALL_HINT}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no `postgres` user to run the server"
        if shutil.which("runuser") is None:
            return None, "running as root and `runuser` is missing to run the server as postgres"
    server = PgServer(bin_dir)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        return None, f"PostgreSQL server would not start: {exc}"
    return server, ""
