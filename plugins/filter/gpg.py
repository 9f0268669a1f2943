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


class FilterModule:
    def filters(self):
        return {"primary_fingerprints": primary_fingerprints}
