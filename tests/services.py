"""Real services for integration tests, started on loopback by the tests themselves:
PostgreSQL (initdb in a temporary folder) with an `mlflow server --app-name basic-auth` in front."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from tune.local_services import free_port, wait_healthy


def clean_env(**extra) -> dict:
    """This process's environment without inherited MLflow/Ray targets, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
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

        self.root, self.port = Path(tempfile.mkdtemp(prefix="attnlab-pg-")), free_port()
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
        opts = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
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
            _as_postgres(
                [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "attnlab", "mlflow"]
            ),
            check=True,
            capture_output=True,
        )
        return self

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://attnlab@127.0.0.1:{self.port}/mlflow"

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]), capture_output=True
        )
        shutil.rmtree(self.root, ignore_errors=True)


class AuthMlflowServer:
    """mlflow server with basic-auth on a PostgreSQL backend; admin credentials generated here."""

    def __init__(self, root: Path, backend_uri: str):
        self.root, self.backend_uri, self.port = root, backend_uri, free_port()
        self.username, self.password = "admin", secrets.token_urlsafe(16)
        self.proc = None

    def start(self) -> "AuthMlflowServer":
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
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            (self.root / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--app-name",
            "basic-auth",
            "--workers",
            "1",
        ]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=open(self.root / "mlflow.log", "wb"), stderr=subprocess.STDOUT
        )
        if wait_healthy(self.url, self.proc):
            return self
        raise RuntimeError("mlflow server did not start: " + (self.root / "mlflow.log").read_text()[-2000:])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)


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
