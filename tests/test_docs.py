"""The README and docs/ link to files and headings that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# [text](target): inline links and images, outside code spans and fenced blocks.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _without_code_blocks(page: Path) -> str:
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)


def _prose(page: Path) -> str:
    """The page without code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", _without_code_blocks(page))


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as -."""
    headings = re.findall(r"^#{1,6} (.+)$", _without_code_blocks(page), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_link_resolves(page):
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert linked.suffix == ".md", f"{page.name}: {target}: an anchor into a non-page"
            assert anchor in _anchors(linked), f"{page.name}: {target}: no such heading"


def test_every_page_of_the_docs_is_linked_from_the_index():
    index = (REPO / "docs" / "README.md").read_text()
    for page in sorted((REPO / "docs").rglob("*.md")):
        relative = page.relative_to(REPO / "docs").as_posix()
        if relative != "README.md":
            assert f"({relative})" in index, f"docs/README.md does not link {relative}"
