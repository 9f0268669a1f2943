# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.gpufleet.inference.plugins.filter.gpg import FilterModule, key_file_problem, primary_fingerprints

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


SOURCE = "docker (https://download.docker.com/linux/debian/gpg)"


def problem(found, expected):
    return key_file_problem(found, expected, "apt_source_key_fingerprint", SOURCE)


def test_key_file_with_exactly_the_expected_key_is_accepted():
    assert problem(primary_fingerprints(DOCKER_LISTING), "9DC8 5822 9FC7 DD38 854A  E2D8 8D81 803C 0EBF CD88") == ""


def test_expected_list_matches_a_file_with_those_keys_in_any_order():
    found = primary_fingerprints(OTHER_LISTING + DOCKER_LISTING)
    assert problem(found, [DOCKER_PRIMARY, OTHER_PRIMARY.lower()]) == ""


def test_key_file_with_an_extra_key_is_refused_and_the_message_says_which():
    message = problem(primary_fingerprints(DOCKER_LISTING + OTHER_LISTING), DOCKER_PRIMARY)
    assert message.startswith("apt_source_key_fingerprint: ")
    assert SOURCE in message
    assert f"exactly the primary key(s) {DOCKER_PRIMARY}" in message
    assert f"it holds {DOCKER_PRIMARY}, {OTHER_PRIMARY}" in message
    assert f"also holds {OTHER_PRIMARY}" in message


def test_key_file_without_the_expected_key_is_refused():
    message = problem(primary_fingerprints(OTHER_LISTING), DOCKER_PRIMARY)
    assert f"lacks {DOCKER_PRIMARY}" in message
    assert f"it holds {OTHER_PRIMARY}" in message


def test_key_file_lacking_one_of_two_expected_keys_is_refused():
    message = problem(primary_fingerprints(DOCKER_LISTING), [DOCKER_PRIMARY, OTHER_PRIMARY])
    assert f"lacks {OTHER_PRIMARY}" in message
    assert "also holds" not in message


def test_subkey_fingerprint_does_not_count_as_the_expected_primary_key():
    # Expecting Docker's signing subkey: the file's only primary key is another one, so it is refused.
    message = problem(primary_fingerprints(DOCKER_LISTING), DOCKER_SUBKEY)
    assert f"lacks {DOCKER_SUBKEY}" in message
    assert f"also holds {DOCKER_PRIMARY}" in message


def test_a_file_that_is_not_a_key_is_refused():
    assert "it holds no key" in problem([], DOCKER_PRIMARY)


@pytest.mark.parametrize("expected", ["", [], "9DC8 5822", "Z" * 40, [DOCKER_PRIMARY, "not-a-fingerprint"]])
def test_malformed_expected_fingerprints_are_refused_naming_the_variable(expected):
    message = problem([DOCKER_PRIMARY], expected)
    assert message.startswith("apt_source_key_fingerprint must be a key fingerprint")
    assert SOURCE in message


def test_key_file_problem_is_registered_under_its_name():
    assert FilterModule().filters()["key_file_problem"] is key_file_problem
