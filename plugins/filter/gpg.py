# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.


def primary_fingerprints(lines):
    fingerprints = []
    record_owner = None
    for line in lines:
        fields = line.split(":")
        kind = fields[0]
        if kind in ("pub", "sub", "sec", "ssb"):
            record_owner = kind
        elif kind == "fpr" and len(fields) > 9:
            if record_owner in ("pub", "sec"):
                fingerprints.append(fields[9].upper())
            record_owner = None
    return fingerprints


def normalize_fingerprints(expected):
    """One fingerprint or a list of them -> upper-case hex strings without spaces, in the given order."""
    items = [expected] if isinstance(expected, str) else list(expected or [])
    return ["".join(str(item).split()).upper() for item in items]


def key_file_problem(found, expected, variable, source):
    wanted = normalize_fingerprints(expected)
    malformed = [item for item in wanted if len(item) not in (40, 64) or any(c not in "0123456789ABCDEF" for c in item)]
    if not wanted or malformed:
        return (
            f"{variable} must be a key fingerprint (40 hex digits; 64 for a v5 key) or a list of them, "
            f"not {expected!r} (for {source})."
        )
    found = [item.upper() for item in found]
    missing = [item for item in wanted if item not in found]
    extra = [item for item in dict.fromkeys(found) if item not in wanted]
    if not (missing or extra):
        return ""
    reasons = []
    if missing:
        reasons.append("it lacks " + ", ".join(missing))
    if extra:
        reasons.append("it also holds " + ", ".join(extra) + ", which apt would trust for this source too")
    return (
        f"{variable}: the key file for {source} must hold exactly the primary key(s) {', '.join(wanted)}; "
        f"it holds {', '.join(found) or 'no key'}: {'; '.join(reasons)}."
    )


class FilterModule:
    def filters(self):
        return {
            "primary_fingerprints": primary_fingerprints,
            "key_file_problem": key_file_problem,
        }
