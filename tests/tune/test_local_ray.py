"""The embedded Ray of a laptop sweep listens on loopback only and advertises 127.0.0.1, by Ray's own
switch in the `attnlab` process's environment, not by patching Ray."""

import json
import subprocess
import sys

from services import clean_env

from attnlab.tune.local_services import SINGLE_MACHINE, SUBMITTED_JOB, embedded_ray_environment

# What `attnlab sweep` does, in order: its entry point configures the process, then a command starts Ray.
PROBE = """
import json, psutil
from attnlab.cli import build_parser, configure_process
configure_process(build_parser().parse_args(["sweep", "--preset", "smoke"]))
import ray
from attnlab.tune.local_services import init_ray
init_ray(None)
me = psutil.Process()
listening = set()
for proc in [me, *me.children(recursive=True)]:
    try:
        listening |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    except psutil.NoSuchProcess:
        pass
print(json.dumps({"nodes": [n["NodeManagerAddress"] for n in ray.nodes()], "listening": sorted(listening),
                  "processes": len(me.children(recursive=True))}))
ray.shutdown()
"""

# A Python caller that imported Ray before setting the switch: told so, before Ray starts.
UNSWITCHED = """
import ray
from attnlab.tune.local_services import ray_stays_on_loopback
print(ray_stays_on_loopback())
"""


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    """`code` in a fresh Python without Ray's switch, as from a user's shell."""
    assert SINGLE_MACHINE not in clean_env()
    command = [sys.executable, "-c", code]
    return subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)


def test_embedded_ray_binds_to_loopback_only(tmp_path):
    proc = _python(PROBE, tmp_path)  # only what the command's entry point sets
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning" not in proc.stderr, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["processes"] >= 3  # GCS, raylet, dashboard at least: the probe did see Ray's processes
    assert seen["nodes"] == ["127.0.0.1"]
    assert seen["listening"], "no listening socket found: the probe saw nothing"
    assert set(seen["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, seen["listening"]


def test_ray_imported_without_the_switch_is_detected(tmp_path):
    proc = _python(UNSWITCHED, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_the_switch_is_left_alone_when_a_cluster_is_named_or_the_user_chose():
    assert embedded_ray_environment(None, {}) == {SINGLE_MACHINE: "0"}
    assert embedded_ray_environment("10.0.0.5:6379", {}) == {}
    assert embedded_ray_environment(None, {"RAY_ADDRESS": "auto"}) == {}
    assert embedded_ray_environment(None, {SUBMITTED_JOB: "{}"}) == {}
    assert embedded_ray_environment(None, {SINGLE_MACHINE: "1"}) == {}
