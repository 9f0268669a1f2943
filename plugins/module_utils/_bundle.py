# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An offline bundle's manifest: every file of the bundle with its size and sha256, and what the files are
(images, models, wheels, collections, tools). Standard library only: the modules that write and check a bundle run
on the controller and on managed hosts alike."""

from __future__ import annotations

import hashlib
import json
import os

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 1 << 20
# The sections that name files of the bundle, each entry with its `file` (or, for models, `files[].path`).
SECTIONS = ("images", "models", "wheels", "collections", "tools", "sources")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(root):
    """Every regular file under ``root`` (relative, '/'-separated, sorted), the manifest itself left out."""
    found = []
    for current, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in files:
            rel = os.path.relpath(os.path.join(current, name), root).replace(os.sep, "/")
            if rel != MANIFEST and not name.endswith(".part"):
                found.append(rel)
    return sorted(found)


def file_entry(root, rel):
    path = os.path.join(root, rel)
    return {"path": rel, "size": os.path.getsize(path), "sha256": sha256_file(path)}


def build_manifest(root, contents, previous=None):
    """The manifest of the bundle in ``root``: ``contents`` (images, models, ... as the bundle playbook describes them)
    and every file with its size and sha256. A file whose size and mtime are those ``previous`` (the manifest written
    before) recorded keeps its recorded sha256, so that a second run does not read every image again."""
    known = {}
    if previous:
        known = {entry["path"]: entry for entry in previous.get("files", [])}
    files = []
    for rel in bundle_files(root):
        path = os.path.join(root, rel)
        st = os.stat(path)
        entry = known.get(rel)
        if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            files.append(dict(entry))
            continue
        files.append({"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)})
    manifest = {"format": FORMAT}
    manifest.update(contents)
    manifest["files"] = files
    problems = referenced_problems(manifest)
    if problems:
        raise ValueError("; ".join(problems))
    return manifest


def referenced(manifest):
    """Every file the manifest's sections name, relative to the bundle."""
    names = []
    for section in SECTIONS:
        for entry in manifest.get(section) or []:
            if section == "models":
                names.extend(item["path"] for item in entry.get("files") or [])
            elif entry.get("file"):
                names.append(entry["file"])
    return names


def referenced_problems(manifest):
    listed = {entry["path"] for entry in manifest.get("files", [])}
    return ["%s is named in the manifest but not in the bundle" % name for name in referenced(manifest) if name not in listed]


def read_manifest(root):
    """The manifest of the bundle in ``root``; ValueError naming the file and what is wrong with it."""
    path = os.path.join(root, MANIFEST)
    if not os.path.isfile(path):
        raise ValueError("%s: no %s there (not a bundle, or not built to the end)" % (root, MANIFEST))
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except ValueError as exc:
        raise ValueError("%s: not JSON (%s)" % (path, exc))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), list):
        raise ValueError("%s: not a bundle manifest of format %d" % (path, FORMAT))
    return manifest


def verify(root, manifest, paths=None):
    """Problems with the bundle's files against ``manifest`` (all of them, or those in ``paths``), one message per file
    naming it; an empty list when every file is the one the manifest lists."""
    entries = {entry["path"]: entry for entry in manifest["files"]}
    problems = []
    for rel in paths if paths is not None else sorted(entries):
        entry = entries.get(rel)
        path = os.path.join(root, rel)
        if entry is None:
            problems.append("bundle file %s is not in %s" % (rel, MANIFEST))
        elif not os.path.isfile(path):
            problems.append("bundle file %s is missing" % rel)
        elif os.path.getsize(path) != entry["size"]:
            problems.append("bundle file %s has %d bytes, %s says %d" % (rel, os.path.getsize(path), MANIFEST, entry["size"]))
        else:
            actual = sha256_file(path)
            if actual != entry["sha256"]:
                problems.append("bundle file %s has sha256 %s, %s says %s" % (rel, actual, MANIFEST, entry["sha256"]))
    return problems


def dumps(manifest):
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"
