"""Real services for integration tests, started by the tests themselves: PostgreSQL (initdb in a
temporary folder, reached through a Unix socket in that folder, so no TCP port can race) with an
`mlflow server --app-name basic-auth` in front, on a loopback port the kernel picks."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from attnlab.tune.local_services import SINGLE_MACHINE, start_mlflow_server, stop_group


def clean_env(**extra) -> dict:
    """This process's environment without inherited MLflow/Ray targets, plus `extra`. Ray's
    single-machine switch, which the suite's own process sets (conftest), is left out too: a
    subprocess starts as from a user's shell (`attnlab` sets it itself; `ray start` nodes of a
    multi-node cluster must not have it)."""
    dropped = ("MLFLOW_", "RAY_ADDRESS", SINGLE_MACHINE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**env, **extra}


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses root: run PostgreSQL's tools as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _pg_bin(name: str) -> str:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)")
    return found


class Postgres:
    """A throwaway cluster in its own folder (outside pytest's root-only tmp, so postgres can reach it)."""

    def __init__(self):
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="attnlab-pg-"))
        self.data, self.socket_dir = self.root / "pgdata", self.root / "pgsock"

    def start(self) -> "Postgres":
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            self.root.chmod(0o755)
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        subprocess.run(
            _as_postgres([_pg_bin("initdb"), "-D", str(self.data), "-U", "attnlab", "--auth=trust"]),
            check=True,
            capture_output=True,
        )
        opts = f"-k {self.socket_dir} -c listen_addresses=''"  # its own socket folder, no TCP
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    opts,
                    "-w",
                    "-l",
                    str(self.root / "pg.log"),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres([_pg_bin("createdb"), "-h", str(self.socket_dir), "-U", "attnlab", "mlflow"]),
            check=True,
            capture_output=True,
        )
        return self

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://attnlab@/mlflow?host={self.socket_dir}"

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]), capture_output=True
        )
        shutil.rmtree(self.root, ignore_errors=True)


class AuthMlflowServer:
    """mlflow server with basic-auth on a PostgreSQL backend; admin credentials generated here."""

    def __init__(self, root: Path, backend_uri: str):
        self.root, self.backend_uri, self.port = root, backend_uri, 0
        self.username, self.password = "admin", secrets.token_urlsafe(16)
        self.proc, self.url = None, None

    def start(self) -> "AuthMlflowServer":
        """Start (the first time on a port the kernel picks; again on that same port)."""
        ini = self.root / "basic_auth.ini"
        # The admin credentials travel in the environment only; the file holds no secret.
        ini.write_text(
            f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {self.backend_uri}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env = {
            **os.environ,
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_USERNAME": self.username,
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        args = ["--backend-store-uri", self.backend_uri, "--artifacts-destination"]
        args += [(self.root / "artifacts").as_uri(), "--app-name", "basic-auth", "--workers", "1"]
        self.proc, self.url = start_mlflow_server(args, self.root / "mlflow.log", self.port, env)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self, grace_s: float = 5) -> None:
        """Stop the server and all it started (grace_s 0: at once, as a crash would)."""
        if self.proc:
            stop_group(self.proc, grace_s)


@contextlib.contextmanager
def auth_mlflow_on_postgres(root: Path):
    """A throwaway PostgreSQL cluster with an auth `mlflow server` in front, both stopped after."""
    pg = Postgres().start()
    server = AuthMlflowServer(root, pg.uri)
    try:
        yield server.start()
    finally:
        server.stop()
        pg.stop()
