# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record of a host's last converged run, and what has changed on the host since.

A run of the host path that passed writes what the host looked like at its end: the digest of the inputs (the
inventory's variables and the collection), the boot, the files the roles manage (package database, engine
configuration, groups, apt sources, GPU runtime configuration) and, for every container of the stack, its id and
image and the read-only files it mounts (Compose file, keys, lane files, models). The next run compares the host with
that record: when nothing differs and every container runs and is healthy, the run has nothing to do.

Signatures are ``stat`` results (size, mtime, inode, mode), never file contents: a 100 GB model costs one ``stat``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

RECORD_VERSION = 1

# What the roles manage outside the stack; paths that do not exist are recorded as absent.
DEFAULT_WATCH = (
    "/var/lib/dpkg/status",
    "/var/lib/rpm",
    "/etc/group",
    "/etc/docker/daemon.json",
    "/etc/apt/sources.list.d",
    "/etc/apt/keyrings",
    "/etc/modprobe.d",
    "/etc/nvidia-container-runtime",
    "/etc/cdi",
    "/var/run/cdi",
    "/etc/default/grub",
)

SERVICE_LABEL = "org.gpufleet.service"
MAX_REASONS = 6


def _stat_signature(st):
    return f"{stat.S_IFMT(st.st_mode):o}:{stat.S_IMODE(st.st_mode):o}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def path_signature(path):
    """One path's signature: ``absent``, a file's stat, or for a directory a digest over its whole tree's stats."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    if not stat.S_ISDIR(top.st_mode):
        return _stat_signature(top)
    digest = hashlib.sha256(_stat_signature(top).encode())
    count = 0
    for root, dirs, files in os.walk(path, onerror=None, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + files):
            entry = os.path.join(root, name)
            try:
                signature = _stat_signature(os.lstat(entry))
            except OSError:
                signature = "vanished"
            digest.update(f"{os.path.relpath(entry, path)}\0{signature}\n".encode())
            count += 1
    return f"tree:{count}:{digest.hexdigest()[:32]}"


def _health(status):
    """Docker's status text (``Up 5 minutes (healthy)``) -> healthy, unhealthy, starting or none."""
    if "(healthy)" in status:
        return "healthy"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(health: starting)" in status:
        return "starting"
    return "none"


def containers_of(listing):
    """The stack's containers from ``GET /containers/json?all=1`` (filtered by label): per name, what identifies it,
    its state, and the read-only files it mounts with the Compose files that made it. One-off containers
    (``docker compose run``: a tool the ops playbook runs beside the servers) are not the stack's."""
    found = {}
    for container in listing:
        labels = container.get("Labels") or {}
        if str(labels.get("com.docker.compose.oneoff", "")).lower() == "true":
            continue
        name = (container.get("Names") or ["?"])[0].lstrip("/")
        mounts = sorted(m["Source"] for m in container.get("Mounts") or []
                        if m.get("Type") == "bind" and not m.get("RW", True) and m.get("Source"))
        configs = [p for p in (labels.get("com.docker.compose.project.config_files") or "").split(",") if p]
        found[name] = {
            "id": container.get("Id", ""),
            "image": container.get("ImageID", ""),
            "project": labels.get("com.docker.compose.project", ""),
            "state": container.get("State", ""),
            "health": _health(container.get("Status", "")),
            "files": sorted(set(mounts + configs)),
        }
    return found


def snapshot(inputs, boot_id, containers, watch=DEFAULT_WATCH):
    """What the host looks like now, as a record holds it (``containers`` from containers_of())."""
    paths = set(watch)
    for container in containers.values():
        paths.update(container["files"])
    return {
        "version": RECORD_VERSION,
        "inputs": inputs,
        "boot_id": boot_id,
        "paths": {path: path_signature(path) for path in sorted(paths)},
        "containers": {name: {"id": c["id"], "image": c["image"]} for name, c in sorted(containers.items())},
    }


def same_state(record, current):
    """Whether a record (without its time) says what ``current`` says."""
    keys = ("version", "inputs", "boot_id", "paths", "containers")
    return all(record.get(key) == current.get(key) for key in keys)


def changes(record, current, containers, now, max_age):
    """Why the host may not be as its last converged run left it: an empty list when nothing changed."""
    if not record:
        return ["no record of a run that passed on this host"]
    if record.get("version") != RECORD_VERSION:
        return [f"the record is of another version ({record.get('version')!r})"]
    reasons = []
    if record.get("inputs") != current["inputs"]:
        reasons.append("the inventory's variables or the collection changed")
    age = now - float(record.get("recorded_at", 0))
    if max_age and age > max_age:
        reasons.append(f"the last full run was {age / 3600:.1f} h ago (more than {max_age / 3600:g} h)")
    if record.get("boot_id") != current["boot_id"]:
        reasons.append("the host was restarted")
    before, after = record.get("containers", {}), current["containers"]
    for name in sorted(set(before) | set(after)):
        if name not in after:
            reasons.append(f"container {name} is gone")
        elif name not in before:
            reasons.append(f"container {name} is new")
        elif before[name] != after[name]:
            reasons.append(f"container {name} was recreated")
    for name, container in sorted(containers.items()):
        if container["state"] != "running":
            reasons.append(f"container {name} is {container['state'] or 'not running'}")
        elif container["health"] in ("unhealthy", "starting"):
            reasons.append(f"container {name} is {container['health']}")
    old_paths, new_paths = record.get("paths", {}), current["paths"]
    changed = [path for path in sorted(set(old_paths) | set(new_paths)) if old_paths.get(path) != new_paths.get(path)]
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        reasons.append(f"changed since: {shown}")
    if len(reasons) > MAX_REASONS:
        reasons = reasons[:MAX_REASONS] + [f"{len(reasons) - MAX_REASONS} more"]
    return reasons


def read_record(path):
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path, record):
    """Atomically (a temporary file in the same directory, then rename), readable by root only."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
