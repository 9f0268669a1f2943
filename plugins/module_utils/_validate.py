# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What an inventory value must look like: pure checks, shared by the filters that check the inventory.

Each ``*_error`` function returns ``None`` for a good value, or the end of a message - what is accepted and
what was given - that the caller prefixes with the variable and the entry it names, for example
``gpufleet_services[1] (chat).bind_address`` + ``" must be an IP address ... (got 'lan')"``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from urllib.parse import urlsplit

# CMake's CUDA_ARCHITECTURES: a compute capability without the dot (52 ... 121), optionally with the
# architecture- or family-specific suffix (90a, 100f) and -real / -virtual, or one of CMake's keywords.
CUDA_ARCHITECTURE_RE = re.compile(r"^(?:[1-9][0-9]{1,2}[af]?(?:-real|-virtual)?|all|all-major|native)$")
# AMD GPU targets as LLVM names them: gfx + major, minor and stepping (gfx1151, gfx942, gfx90a, gfx1100), the
# generic targets (gfx11-generic, gfx10-3-generic) and feature flags (gfx90a:xnack-).
GFX_TARGET_RE = re.compile(r"^gfx(?:[0-9]{3,4}|[0-9]{2}[a-f]|[0-9]{1,2}(?:-[0-9])?-generic)(?::[a-z0-9]+[+-])*$")
# HSA_OVERRIDE_GFX_VERSION: major.minor.stepping in decimal (11.5.1 for gfx1151).
GFX_VERSION_RE = re.compile(r"^[0-9]{1,2}\.[0-9]\.[0-9]{1,2}$")
# A release version: numbers separated by dots, then an optional suffix (0.22.0, 1.18.2-1, 2.13.0+cpu, 0.10.1rc1).
VERSION_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)+(?:[-+~]?[0-9A-Za-z.~+-]+)?$")
HEX_RE = re.compile(r"^[0-9a-f]+$")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
# The hub's repository ids (huggingface_hub's validate_repo_id): an optional owner and a name, each of letters,
# digits, '-', '_' and '.', neither starting nor ending with '-' or '.', no '--' or '..', 96 characters at most.
REPO_PART_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
REPO_ID_MAX = 96
# A service's API key: at least 16 characters (a guessable key guards nothing), and only what the proxy's
# configuration and an Authorization header can hold.
API_KEY_MIN = 16
API_KEY_MAX = 512
API_KEY_RE = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
# Context sizes in tokens: 0 (the model's own), else from 128 (below that no chat template fits) to 1 Mi tokens
# (the largest context any released model has; more is a typo, such as an extra zero).
CONTEXT_MIN = 128
CONTEXT_MAX = 1048576
GIT_URL_SCHEMES = ("https", "http", "ssh", "git", "file")
SCP_LIKE_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")
# Characters git check-ref-format refuses anywhere in a ref.
GIT_REF_BAD_CHARS = set(" ~^:?*[\\")


def got(value):
    return f"(got {value!r})"


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def type_name(value):
    """What a value is, in the words of a YAML reader."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a dict"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "nothing (null)"
    return type(value).__name__


def did_you_mean(key, known):
    """`` (did you mean 'x'?)`` for the known name nearest to ``key``, or nothing when none is close."""
    key = str(key)
    # A shortened or lengthened key (bind for bind_address) first, the shortest such; else the closest spelling.
    close = sorted((k for k in known if len(key) >= 3 and (k.startswith(key) or key.startswith(k))), key=len)
    close = close or difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_keys(entry, known, where):
    """One message per key of ``entry`` that is not in ``known``, with the nearest known key when one is close."""
    errors = []
    for key in entry:
        if key not in known:
            hint = did_you_mean(key, known) or f" (known keys: {', '.join(sorted(known))})"
            errors.append(f"{where}: unknown key '{key}'{hint}")
    return errors


def ip_address_error(value):
    """A bind address: an IPv4 or IPv6 address (0.0.0.0 and :: for every interface). Docker publishes ports on
    addresses, so a host name (even localhost) is refused rather than resolved differently on each host."""
    text = value if isinstance(value, str) else None
    if text:
        try:
            ipaddress.ip_address(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
            return None
        except ValueError:
            pass
    return f"must be an IP address such as 127.0.0.1, 0.0.0.0 (every interface), ::1 or :: - not a host name {got(value)}"


def absolute_path_error(value, empty_ok=False):
    if empty_ok and value == "":
        return None
    if isinstance(value, str) and value.startswith("/") and "\n" not in value and "\0" not in value:
        return None
    return f"must be an absolute path such as /opt/gpufleet/models{' (or empty)' if empty_ok else ''} {got(value)}"


def file_in_directory_error(value):
    """A file inside a model's directory: a relative path that stays inside it (no leading '/', no '..')."""
    if isinstance(value, str) and value and not value.startswith("/") and ".." not in value.split("/") \
            and "\0" not in value and "\n" not in value:
        return None
    return f"must be the path of a file inside the model's directory, such as model-Q4_K_M.gguf {got(value)}"


def _words(value):
    return [word for word in re.split(r"[;,\s]+", value) if word] if isinstance(value, str) else None


def cuda_architectures_error(value, empty_ok=True):
    """CMake's CUDA_ARCHITECTURES, ';' or ',' separated: 121 (GB10), 90 (H100), 120a, 89-real, native, all."""
    words = _words(str(value) if _integer(value) else value)
    if words is None or (not words and not empty_ok) or not all(CUDA_ARCHITECTURE_RE.match(w) for w in words):
        return ("must be CUDA architectures as CMake takes them, separated by ';' - such as 121 (GB10), 90 (H100), "
                f"120a, 89-real, native or all {got(value)}")
    return None


def gfx_targets_error(value, empty_ok=True, single=False):
    """AMD GPU targets: gfx1151 (Strix Halo), gfx942 (MI300), gfx90a, gfx1100, separated by ';'."""
    words = _words(value)
    if (words is None or (not words and not empty_ok) or (single and len(words) > 1)
            or not all(GFX_TARGET_RE.match(w) for w in words)):
        what = "an AMD gfx target" if single else "AMD gfx targets separated by ';'"
        return f"must be {what} such as gfx1151 (Strix Halo), gfx942 (MI300), gfx90a or gfx1100 {got(value)}"
    return None


def gfx_version_error(value):
    if value == "" or (isinstance(value, str) and GFX_VERSION_RE.match(value)):
        return None
    return f"must be a gfx version such as 11.5.1 (for gfx1151) or empty {got(value)}"


def version_error(value, example="1.18.2"):
    if isinstance(value, str) and VERSION_RE.match(value):
        return None
    return f"must be a version such as {example} {got(value)}"


def commit_error(value, empty_ok=False):
    if (empty_ok and value == "") or (isinstance(value, str) and 7 <= len(value) <= 40 and HEX_RE.match(value)):
        return None
    return f"must be a git commit: 7 to 40 lower-case hex digits {got(value)}"


def _ref_name_ok(name):
    """git check-ref-format's rules for a branch or tag name (as given to a clone: no leading '-')."""
    if not name or name == "@" or name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")):
        return False
    if ".." in name or "//" in name or "@{" in name:
        return False
    if any(ord(c) < 32 or ord(c) == 127 or c in GIT_REF_BAD_CHARS for c in name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))


def git_ref_error(value):
    """A branch, a tag (git check-ref-format) or a commit (7 to 40 hex digits)."""
    if _integer(value):
        value = str(value)
    if isinstance(value, str) and _ref_name_ok(value):
        return None
    return ("must be a git branch, tag or commit: no spaces or any of ~ ^ : ? * [ \\, no '..', no leading '-' or "
            f"'.', no trailing '/', '.' or '.lock' {got(value)}")


def hub_revision_error(value):
    """A revision of a hub repository: a branch or tag name (refs/pr/1 too) or a full 40-hex-digit commit."""
    if isinstance(value, str) and _ref_name_ok(value):
        if HEX_RE.match(value) and len(value) != 40 and len(value) >= 7:
            return f"must be a full 40-hex-digit commit (the hub does not resolve short ones) {got(value)}"
        return None
    return f"must be a branch or tag of the repository (such as main or v1.0) or a 40-hex-digit commit {got(value)}"


def sha256_error(value):
    if isinstance(value, str) and SHA256_RE.match(value):
        return None
    return f"must be a sha256 of exactly 64 hex digits (0-9, a-f) {got(value)}"


def context_error(value):
    if _integer(value) and (value == 0 or CONTEXT_MIN <= value <= CONTEXT_MAX):
        return None
    return (f"must be a number of tokens from {CONTEXT_MIN} to {CONTEXT_MAX:,}, or 0 for the model's own "
            f"{got(value)}")


def api_key_error(value):
    if isinstance(value, str) and API_KEY_MIN <= len(value) <= API_KEY_MAX and API_KEY_RE.match(value):
        return None
    # The key itself is never repeated: only its length and kind.
    shown = f"a string of {len(value)} characters" if isinstance(value, str) else type_name(value)
    return (f"must be {API_KEY_MIN} to {API_KEY_MAX} characters of letters, digits and . _ ~ + / = - "
            f"(got {shown})")


def url_error(value, schemes=("http", "https"), empty_ok=False):
    if empty_ok and value == "":
        return None
    if isinstance(value, str) and not any(c.isspace() for c in value):
        parts = urlsplit(value)
        if parts.scheme in schemes and (parts.hostname or parts.scheme == "file"):
            return None
    return f"must be a URL with a host, starting with {' or '.join(s + '://' for s in schemes)} {got(value)}"


def git_url_error(value):
    if isinstance(value, str) and SCP_LIKE_RE.match(value):
        return None
    if url_error(value, GIT_URL_SCHEMES) is None:
        return None
    return f"must be a git URL (https://host/path, ssh://, git:// or user@host:path) {got(value)}"


def repo_id_error(value):
    if isinstance(value, str) and len(value) <= REPO_ID_MAX and "--" not in value and ".." not in value:
        parts = value.split("/")
        if len(parts) <= 2 and all(REPO_PART_RE.match(part) for part in parts):
            return None
    return (f"must be a hub repository id: owner/name (or a bare name), letters, digits, '-', '_' and '.', "
            f"at most {REPO_ID_MAX} characters, no '--' or '..' {got(value)}")


def port_error(value):
    if _integer(value) and 1 <= value <= 65535:
        return None
    return f"must be a port number from 1 to 65535 {got(value)}"


def checksum_error(value, urls_ok=False):
    """``sha256:`` and 64 hex digits (or, where get_url fetches the checksum, ``sha256:<URL>``)."""
    if isinstance(value, str) and value.startswith("sha256:"):
        rest = value[len("sha256:"):]
        if sha256_error(rest) is None or (urls_ok and url_error(rest) is None):
            return None
    what = "sha256: and 64 hex digits" + (" (or sha256: and the URL of a checksum file)" if urls_ok else "")
    return f"must be {what} {got(value)}"


def named_entry(base, index, name, pattern, rule, seen):
    """Where entry ``index`` of the list ``base`` is (with its name, once the name is good), and what is wrong with
    the name: not matching ``pattern`` (``rule`` says what is accepted), or already used (``seen``: name -> index)."""
    where = f"{base}[{index}]"
    if not isinstance(name, str) or not pattern.match(name):
        return where, [f"{where}.name must be {rule} (got {name!r})"]
    where = f"{where} ({name})"
    if name in seen:
        return where, [f"{where}: the name is already used by {base.rsplit('.', 1)[-1]}[{seen[name]}]"]
    seen[name] = index
    return where, []
