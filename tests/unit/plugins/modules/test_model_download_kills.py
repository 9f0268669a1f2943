# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_download killed with SIGKILL mid-transfer, again and again: the module runs in its own process, as
Ansible runs it, against tests/support/fake_hub.py, and is killed at random points before a last run finishes.

What a user would notice: a partial file under the final name, a wrong file after the resumes, or a resume
that fetches again what the killed run had already received.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import tempfile
import time

import pytest

from ansible_collections.gpufleet.inference.tests.support.fake_hub import FakeHub
from ansible_collections.gpufleet.inference.tests.unit.utils.module_process import parse_result, start_module

MIB = 1024 * 1024


def wait_for_growth(part, proc, above, deadline):
    """Wait until ``part`` holds more than ``above`` bytes: the killed run is mid-transfer."""
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and part.stat().st_size > above:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("source, size, kills", [("url", 192 * MIB, 10), ("hf_repo", 24 * MIB, 3)])
def test_random_kills_never_leave_a_partial_file_and_resume_without_refetching(tmp_path, source, size, kills):
    content = random.Random(11).randbytes(size)
    digest = hashlib.sha256(content).hexdigest()
    root = tmp_path / "hub"
    (root / "org" / "model").mkdir(parents=True)
    (root / "org" / "model" / "model.gguf").write_bytes(content)
    dest = tmp_path / "models"
    final = dest / "model.gguf"
    part = dest / ".model.gguf.part"
    env = dict(os.environ, HF_HOME=tempfile.mkdtemp(dir=tmp_path), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    for name in ("HF_TOKEN", "HF_ENDPOINT", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(name, None)
    rng = random.Random()
    with FakeHub(root) as hub:
        if source == "url":
            args = {"dest": str(dest), "url": "%s/files/org/model/model.gguf" % hub.url, "sha256": digest}
        else:
            args = {"dest": str(dest), "hf_repo": "org/model", "files": ["model.gguf"], "endpoint": hub.url}
        # About 10 MB/s (the file would take 20 s): every kill lands mid-transfer. What a kill costs beyond the
        # module's reach - the socket buffers, and what the hub sends while the killed process is torn down (tens
        # of milliseconds on a loaded host) - grows with the rate; the module's own share does not.
        hub.rate = size // 20
        killed_at = []
        for dummy in range(kills):
            before = part.stat().st_size if part.exists() else 0
            proc = start_module("model_download", args, env)
            assert wait_for_growth(part, proc, before, time.monotonic() + 60), proc.communicate()
            time.sleep(rng.uniform(0.0, 0.35))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            assert not final.exists()
            on_disk = part.read_bytes()
            assert content.startswith(on_disk)  # what a killed run leaves is a true prefix, never garbage
            killed_at.append(len(on_disk))
        assert killed_at[-1] < size  # the kills all landed before the end of the file

        hub.rate = None
        proc = start_module("model_download", args, env)
        out, err = proc.communicate(timeout=120)
        served = hub.served("model.gguf")

    result = parse_result(out)
    assert result.get("failed") is None, (out, err)
    assert result["changed"] is True
    assert result["files"][0]["sha256"] == digest
    assert hashlib.sha256(final.read_bytes()).hexdigest() == digest
    assert not part.exists()
    assert sorted(p.name for p in dest.iterdir()) == [".gpufleet-download.lock", ".gpufleet-verified.json", "model.gguf"]
    extra = (served - size) * 100.0 / size
    print("%s: %d kills at %s MiB; re-fetched %.2f %% (%d bytes over %d)"
          % (source, kills, ", ".join("%.1f" % (k / MIB) for k in killed_at), extra, served - size, size))
    assert served <= size * 1.05
