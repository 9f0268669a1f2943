# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
name: primary_fingerprints
short_description: Fingerprints of the primary keys in a C(gpg --with-colons) listing
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Takes the lines that C(gpg --show-keys --with-colons --with-fingerprint) prints and returns the fingerprint of
    each primary key (the C(fpr) record that follows a C(pub) record), upper case. Subkey fingerprints are left out,
    so a repository key cannot be accepted because one of its subkeys happens to match.
options:
  _input:
    description: The listing, as a list of lines.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Fingerprints of the keys in a downloaded key file
  ansible.builtin.debug:
    msg: "{{ listing.stdout_lines | gpufleet.inference.primary_fingerprints }}"
"""

RETURN = r"""
_value:
  description: The primary keys' fingerprints, in the order of the listing.
  type: list
  elements: str
"""

# The second filter of this file, documented here for readers (ansible-doc shows the first).
# key_file_problem(found, expected, variable, source):
#   found     the primary fingerprints of a key file (primary_fingerprints' result)
#   expected  one fingerprint or a list of them, 40 (v4) or 64 (v5) hex digits; spaces and case are ignored
#   variable  the variable the expected fingerprints came from, named in the message
#   source    what the key file is for (the apt source's name and the key's URL), named in the message
# Returns "" when the set of the key file's primary keys is exactly the expected set;
# otherwise a sentence that names the variable, the source, the expected and the found fingerprints.
# apt trusts every key of a Signed-By file for that source, so one key too many is refused as firmly
# as one too few.


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
