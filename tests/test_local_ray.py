"""The embedded Ray of a laptop sweep listens on loopback only and advertises 127.0.0.1."""

import json
import subprocess
import sys

from services import clean_env

PROBE = """
import json, psutil, ray
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


def test_embedded_ray_binds_to_loopback_only(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["processes"] >= 3  # GCS, raylet, dashboard at least: the probe did see Ray's processes
    assert seen["nodes"] == ["127.0.0.1"]
    assert seen["listening"], "no listening socket found: the probe saw nothing"
    assert set(seen["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, seen["listening"]
