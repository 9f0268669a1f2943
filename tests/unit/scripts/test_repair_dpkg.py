# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/lib.sh's apt_get: after an interrupted dpkg run, apt works again instead of stopping the set-up.

Runs in a throwaway container of the Debian 12 test host image (built by `make images`): the
interrupted state is made there, the way a killed install leaves it, and never on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
IMAGE = "gpufleet/test-host:bookworm"
APT_REFUSES = "dpkg was interrupted, you must manually run 'dpkg --configure -a'"

# A dpkg journal entry as a killed `dpkg --configure` leaves it: the package half-configured.
INTERRUPT = (
    "dpkg-query -s hostname | sed 's/^Status: .*/Status: install ok half-configured/' > /var/lib/dpkg/updates/0001"
)


def in_container(script):
    if shutil.which("docker") is None or subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, check=False
    ).returncode != 0:
        pytest.skip(f"needs Docker and the {IMAGE} image (make images)")
    return subprocess.run(
        ["docker", "run", "--rm", "--name", f"gpufleet-unit-dpkg-{uuid.uuid4().hex[:8]}", "--network", "none",
         "-v", f"{SCRIPTS}:/scripts:ro", "--entrypoint", "bash", IMAGE, "-c", script],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture(scope="module")
def repaired():
    return in_container(
        f"""
        set -u
        . /scripts/lib.sh
        {INTERRUPT}
        echo "== before"; apt-get check 2>&1; echo "rc=$?"
        echo "== apt_get"; apt_get check 2>&1; echo "rc=$?"
        echo "== status"; dpkg-query -W -f='${{Status}}\\n' hostname; ls -A /var/lib/dpkg/updates/
        echo "== again"; repair_dpkg 2>&1; echo "rc=$?"
        """
    )


def section(result, name):
    return result.stdout.split(f"== {name}\n", 1)[1].split("\n== ", 1)[0]


def test_the_interrupted_state_is_the_one_apt_refuses(repaired):
    before = section(repaired, "before")
    assert APT_REFUSES in before
    assert "rc=0" not in before


def test_apt_get_repairs_it_says_so_and_then_runs(repaired):
    out = section(repaired, "apt_get")
    assert "dpkg was interrupted (1 journal file(s) in /var/lib/dpkg/updates/); running dpkg --configure -a" in out
    assert "Setting up hostname" in out
    assert APT_REFUSES not in out
    assert out.rstrip().endswith("rc=0")


def test_the_package_is_configured_and_the_journal_is_gone(repaired):
    assert section(repaired, "status").strip() == "install ok installed"


def test_repair_is_silent_and_changes_nothing_when_dpkg_was_not_interrupted(repaired):
    assert section(repaired, "again").strip() == "rc=0"
