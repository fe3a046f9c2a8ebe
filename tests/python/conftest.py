"""Starts the real switchyard binary (conformance profile) once per test session.

The binary is $SWITCHYARD_BIN, or target/debug/switchyard in the repository.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MASTER_KEY = "sy-python-client-tests-master-key-0123456789"


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def get(self, path: str, headers: dict | None = None, timeout: float = 30) -> tuple[int, str]:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                return res.status, res.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stats(self) -> dict:
        status, body = self.get("/api/stats", {"X-API-Key": MASTER_KEY})
        assert status == 200, f"GET /api/stats answered {status}: {body}"
        return json.loads(body)

    def assert_no_leaks(self, hubs=("/testhub",), timeout: float = 5.0) -> None:
        """No connections and no group entries on `hubs` (cleanup is asynchronous: poll a little)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            found = {h["path"]: h for h in stats.get("hubs", [])}
            if all(p in found and found[p]["connections"] == 0 and found[p]["groupEntries"] == 0 for p in hubs):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"leak check on {hubs} failed; /api/stats: {json.dumps(stats)}")
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    binary = Path(os.environ.get("SWITCHYARD_BIN") or REPO / "target" / "debug" / "switchyard")
    if not binary.exists():
        pytest.exit(f"switchyard binary not found at {binary} (build it, or set SWITCHYARD_BIN)", returncode=2)
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="sy-py-client-tests-")
    log_path = Path(data_dir) / "server.log"
    env = {
        **os.environ,
        "SWITCHYARD__SIGNALR__CONFORMANCE": "true",
        "CONDUIT_MASTER_KEY": MASTER_KEY,
        "SWITCHYARD__SERVER__DATA_DIR": data_dir,
        "SWITCHYARD__SERVER__WORKERS": "2",
        # signalrcore's stop() closes its socket while its reader thread is blocked in recv(), so the
        # socket really closes only when the server next sends something: ping every second, not 15.
        "SWITCHYARD__SIGNALR__KEEP_ALIVE_SECONDS": "1",
    }
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [str(binary), "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    srv = Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.exit(f"switchyard exited early:\n{log_path.read_text()}", returncode=2)
            try:
                if srv.get("/health/live", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.exit("switchyard did not answer /health/live in 30 s", returncode=2)
            time.sleep(0.05)
        yield srv
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)
