"""Stand-in for pip's get-pip.py bootstrap script (gpufleet-standin).

ansible-test runs get-pip.py inside each virtualenv it creates, downloading it
from a host our build machines cannot reach unless a copy is cached. This file
is placed in that cache: it installs pip from the interpreter's own ensurepip
and then the packages it was asked for, with pip's normal configuration.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main() -> int:
    # ensurepip empties pip's configuration in its own process (and so loses the
    # machine's index and certificate settings); run it in a child process.
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"],
                   check=True, stdout=subprocess.DEVNULL)
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    if not any(not arg.startswith("-") for arg in args):
        return 0
    return subprocess.run([sys.executable, "-m", "pip", "install", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
