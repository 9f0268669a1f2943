# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.gpufleet.inference.plugins.filter.gpg import FilterModule, primary_fingerprints

# Shaped like `gpg --show-keys --with-colons --with-fingerprint docker.gpg` (gpg 2.2/2.4):
# the fingerprint is field 10 (index 9) of the `fpr` record that follows each `pub`/`sub`.
DOCKER_PRIMARY = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
DOCKER_SUBKEY = "D3306A018370199E527AE7997EA0A9C3F273FCD8"
DOCKER_LISTING = [
    "pub:-:4096:1:8D81803C0EBFCD88:1487788586:::-:::scESA::::::23::0:",
    f"fpr:::::::::{DOCKER_PRIMARY}:",
    "uid:-::::1487788586::A5E18A2E1B5D5C3D8A1F2D7C1B7E3E0F1D2C3B4A::Docker Release (CE deb) <docker@docker.com>::::::::::0:",
    "sub:-:4096:1:7EA0A9C3F273FCD8:1487792064:::-:::s::::::23:",
    f"fpr:::::::::{DOCKER_SUBKEY}:",
]

# A second key in the same file, its fingerprint printed in lower case.
OTHER_PRIMARY = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
OTHER_SUBKEY = "0123456789ABCDEF0123456789ABCDEF01234567"
OTHER_LISTING = [
    "pub:-:4096:1:DDCAE044F796ECB0:1500000000:::-:::scSC::::::23::0:",
    f"fpr:::::::::{OTHER_PRIMARY.lower()}:",
    "uid:-::::1500000000::0F1E2D3C4B5A69788796A5B4C3D2E1F0A1B2C3D4::Example Repository Signing Key <keys@example.com>::::::::::0:",
    "sub:-:4096:1:89ABCDEF01234567:1500000000:1700000000::-:::e::::::23:",
    f"fpr:::::::::{OTHER_SUBKEY.lower()}:",
]


def test_primary_key_with_subkey_gives_only_the_primary_fingerprint():
    assert primary_fingerprints(DOCKER_LISTING) == [DOCKER_PRIMARY]


def test_subkey_fingerprint_is_never_returned():
    assert DOCKER_SUBKEY not in primary_fingerprints(DOCKER_LISTING + OTHER_LISTING)
    assert OTHER_SUBKEY not in primary_fingerprints(DOCKER_LISTING + OTHER_LISTING)


def test_fingerprints_are_upper_case():
    assert primary_fingerprints(OTHER_LISTING) == [OTHER_PRIMARY]


def test_two_keys_in_one_file_in_listing_order():
    assert primary_fingerprints(DOCKER_LISTING + OTHER_LISTING) == [DOCKER_PRIMARY, OTHER_PRIMARY]
    assert primary_fingerprints(OTHER_LISTING + DOCKER_LISTING) == [OTHER_PRIMARY, DOCKER_PRIMARY]


def test_secret_key_listing_gives_the_primary_fingerprint():
    listing = [line.replace("pub:", "sec:", 1).replace("sub:", "ssb:", 1) for line in DOCKER_LISTING]
    assert primary_fingerprints(listing) == [DOCKER_PRIMARY]


def test_keygrip_and_other_records_do_not_confuse_it():
    listing = [
        DOCKER_LISTING[0],
        DOCKER_LISTING[1],
        "grp:::::::::1234567890ABCDEF1234567890ABCDEF12345678:",
        DOCKER_LISTING[2],
        DOCKER_LISTING[3],
        DOCKER_LISTING[4],
        "grp:::::::::ABCDEF1234567890ABCDEF1234567890ABCDEF12:",
    ]
    assert primary_fingerprints(listing) == [DOCKER_PRIMARY]


@pytest.mark.parametrize("lines", [[], [""], ["tru::1:1700000000:0:3:1:5"]])
def test_no_keys_gives_an_empty_list(lines):
    assert primary_fingerprints(lines) == []


def test_filter_is_registered_under_its_documented_name():
    assert FilterModule().filters()["primary_fingerprints"] is primary_fingerprints
