# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a GGUF file says of itself, read with llama.cpp's own ``gguf`` package.

Reading a file's header parses every tensor's description and the whole vocabulary (seconds for a large model), so
what was read is kept in a cache file, keyed by the file's path, size, modification time and inode: a file replaced
or rewritten is read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

try:
    import gguf
except ImportError:  # reported by the module, which names the interpreter
    gguf = None

# Bump when what read() returns changes: older cache entries are then read again.
CACHE_VERSION = 1


class GGUFError(Exception):
    pass


def _identity(path):
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def field_value(reader, key):
    """The value of one metadata key of a GGUFReader, or None when the file has no such key or it cannot be read."""
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except (AttributeError, IndexError, ValueError, UnicodeDecodeError):
        return None


def read(path):
    """The metadata of one GGUF file (see the gguf_metadata module's RETURN for the keys)."""
    if gguf is None:
        raise GGUFError("the Python package 'gguf' is not installed for this interpreter")
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, OSError, IndexError, KeyError) as exc:
        raise GGUFError(f"{path} is not a GGUF file llama.cpp can read: {exc}") from exc
    architecture = field_value(reader, "general.architecture")
    file_type = field_value(reader, "general.file_type")
    try:
        file_type_name = gguf.LlamaFileType(file_type).name.replace("MOSTLY_", "") if file_type is not None else None
    except ValueError:
        file_type_name = str(file_type)
    template = field_value(reader, "tokenizer.chat_template")
    template = template if isinstance(template, str) and template.strip() else None
    return {
        "architecture": architecture,
        "name": field_value(reader, "general.name"),
        "size_label": field_value(reader, "general.size_label"),
        "file_type": file_type_name,
        "context_length": field_value(reader, f"{architecture}.context_length") if architecture else None,
        "chat_template": template,
        "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest() if template else None,
        "split_count": field_value(reader, "split.count"),
        "tensor_count": len(reader.tensors),
    }


def _load_cache(cache):
    try:
        with open(cache, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def _save_cache(cache, files):
    directory = os.path.dirname(cache) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gguf-cache.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"version": CACHE_VERSION, "files": files}, handle, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, cache)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_many(paths, cache=None):
    """``(files, read_now)``: the metadata of each path, and the paths read now (not taken from the cache)."""
    cached = _load_cache(cache) if cache else {}
    files, read_now, keep = {}, [], {}
    for path in paths:
        try:
            identity = _identity(path)
        except OSError as exc:
            raise GGUFError(f"{path}: {exc.strerror}") from exc
        entry = cached.get(path)
        if entry and entry.get("identity") == identity:
            files[path] = entry["metadata"]
        else:
            files[path] = read(path)
            read_now.append(path)
        keep[path] = {"identity": identity, "metadata": files[path]}
    if cache and read_now:
        # Entries of other files stay (another service's, read by an earlier run), unless they are gone.
        keep.update({p: e for p, e in cached.items() if p not in keep and os.path.exists(p)})
        _save_cache(cache, keep)
    return files, read_now
