# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remove the models a host no longer needs, and only what model_download put there (standard library only).

A model directory is ``<models_dir>/<name>``. It counts as model_download's when it holds the verification
record ``.gpufleet-verified.json``; of such a directory only what model_download wrote is removed: the files
of the record whose size and mtime are still the recorded ones, the ``.NAME.part`` files that have their
``.NAME.part.json`` sidecar, the record and the lock. A file changed since it was verified, or any other
file, stays (and is reported), and so does the directory that still holds it.
"""

from __future__ import annotations

import os
import posixpath
import stat

from ansible_collections.gpufleet.inference.plugins.module_utils._download import LOCK_NAME, RECORD_NAME, DestLock, Record


def _inside(root, relative):
    """``root/relative`` when ``relative`` is a plain relative path that stays under ``root``; else ``None``."""
    norm = posixpath.normpath(str(relative))
    if not relative or norm.startswith(("/", "../")) or norm in (".", ".."):
        return None
    return os.path.join(root, *norm.split("/"))


def _regular(path):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def plan_model(directory):
    """What may go from one model directory: ``{"remove": [relative paths], "left": [relative paths]}``.

    ``remove`` lists the recorded files still as recorded, the ``.part`` files with their sidecars and, last, the
    record and the lock; ``left`` every other file found under the directory (a user's, or one changed since).
    """
    record = Record(directory).load()
    remove = []
    for name in sorted(record.files):
        path = _inside(directory, name)
        st = _regular(path) if path else None
        if st is not None and record.lookup(name, st) is not None:
            remove.append(name)
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for filename in sorted(files):
            found.append(os.path.relpath(os.path.join(root, filename), directory).replace(os.sep, "/"))
    present = set(found)
    for name in found:
        base = posixpath.basename(name)
        if base.startswith(".") and base.endswith(".part") and name + ".json" in present:
            remove += [name, name + ".json"]
    remove += [name for name in (RECORD_NAME, LOCK_NAME) if name in present]
    taken = set(remove)
    return {"remove": remove, "left": [name for name in found if name not in taken]}


def model_directories(models_dir):
    """The names of the directories under ``models_dir`` that hold a verification record (not symbolic links)."""
    names = []
    try:
        entries = sorted(os.scandir(models_dir), key=lambda entry: entry.name)
    except FileNotFoundError:
        return names
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and _regular(os.path.join(entry.path, RECORD_NAME)):
            names.append(entry.name)
    return names


def plan(models_dir, keep):
    """Per model directory of model_download's not in ``keep``: ``{"name", "path", "remove", "left", "bytes"}``."""
    plans = []
    for name in model_directories(models_dir):
        if name in keep:
            continue
        directory = os.path.join(models_dir, name)
        entry = plan_model(directory)
        size = 0
        for relative in entry["remove"]:
            st = _regular(_inside(directory, relative))
            size += st.st_size if st else 0
        plans.append(dict(entry, name=name, path=directory, bytes=size))
    return plans


def _remove_empty_parents(directory, relative):
    """Remove the directories between ``directory/relative`` and ``directory`` that are now empty."""
    parent = posixpath.dirname(relative)
    while parent:
        try:
            os.rmdir(os.path.join(directory, *parent.split("/")))
        except OSError:
            return
        parent = posixpath.dirname(parent)


def prune(models_dir, keep, check_mode=False, lock_timeout=600):
    """Remove what ``plan`` lists; returns the plans, each with ``directory_removed``."""
    plans = plan(models_dir, keep)
    for entry in plans:
        entry["directory_removed"] = not entry["left"]
        if check_mode:
            continue
        directory = entry["path"]
        # Under the download lock: a model_download into the same directory waits, or this does.
        with DestLock(directory, lock_timeout):
            entry.update(plan_model(directory))  # again, now that no download can change it
            for relative in entry["remove"]:
                if relative == LOCK_NAME:
                    continue
                os.unlink(_inside(directory, relative))
                _remove_empty_parents(directory, relative)
            os.unlink(os.path.join(directory, LOCK_NAME))
        entry["directory_removed"] = not entry["left"]
        if not entry["left"]:
            try:
                os.rmdir(directory)
            except OSError:
                entry["directory_removed"] = False  # something arrived meanwhile: it stays
    return plans
