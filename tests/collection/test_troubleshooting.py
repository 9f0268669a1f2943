# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/troubleshooting.md quotes the collection's own failure messages: every `Message:` line of the page must
occur in the source (roles, playbooks, plugins), its fixed fragments in order in one file. A placeholder of the
source ({{ ... }}, {...}, %s) is written `...` on the page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "troubleshooting.md"
MESSAGE = re.compile(r"^Message: `([^`]+)`\s*$", re.MULTILINE)
# Python's implicit concatenation of string literals over a line break ("...abc "\n    f"def...").
JOINED_LITERALS = re.compile(r"""(["'])\s*\n\s*[rbfRBF]{0,2}\1""")
MIN_MESSAGES = 25


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _sources() -> dict[str, str]:
    files = [*ROOT.glob("roles/**/*.yml"), *ROOT.glob("playbooks/**/*.yml"), *ROOT.glob("plugins/**/*.py"),
             *ROOT.glob("plugins/**/*.yml")]
    sources = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            text = JOINED_LITERALS.sub("", text)
        sources[str(path.relative_to(ROOT))] = _normalize(text)
    return sources


SOURCES = _sources()
MESSAGES = MESSAGE.findall(PAGE.read_text(encoding="utf-8"))


def _found_in(message: str) -> list[str]:
    fragments = [f.strip() for f in _normalize(message).split("...") if f.strip()]
    found = []
    for name, text in SOURCES.items():
        at = 0
        for fragment in fragments:
            at = text.find(fragment, at)
            if at < 0:
                break
            at += len(fragment)
        else:
            found.append(name)
    return found


def test_the_page_quotes_enough_messages():
    assert len(MESSAGES) >= MIN_MESSAGES, f"{PAGE.name} quotes {len(MESSAGES)} messages, fewer than {MIN_MESSAGES}"
    assert len(set(MESSAGES)) == len(MESSAGES), "a message is quoted twice"


@pytest.mark.parametrize("message", MESSAGES, ids=[m[:60] for m in MESSAGES])
def test_message_occurs_in_the_source(message):
    fragments = [f.strip() for f in message.split("...") if f.strip()]
    assert max(len(f) for f in fragments) >= 20, f"no distinctive fixed fragment (20 characters or more) in {message!r}"
    assert _found_in(message), f"not in roles/, playbooks/ or plugins/ (fragments in order, in one file): {message!r}"
