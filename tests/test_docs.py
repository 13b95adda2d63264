"""The manual cannot drift: every relative link and anchor of README, docs/ and bench/RESULTS.md
resolves, and the flag tables of docs/ are the parsers' own, group by group."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analysis.__main__ import build_parser as analysis_parser
from sweeps.cli import build_parser as run_parser
from tests.conftest import REPO

PAGES = [REPO / "README.md", REPO / "bench" / "RESULTS.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^(    |\t).*$", "", page.read_text(), flags=re.M)  # code blocks hold no headings
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page):
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.relative_to(REPO)}: {target}: no such file"
        if anchor:
            assert file.suffix == ".md" and anchor in anchors(file), (
                f"{page.relative_to(REPO)}: {target}: no such anchor"
            )


def test_the_link_check_catches_a_broken_anchor(tmp_path):
    page = tmp_path / "a.md"
    page.write_text("# Title\n\n## One GPU, a box\n\n    # not a heading\n")
    assert anchors(page) == {"title", "one-gpu-a-box"}


def documented_flags(page: Path, heading_level: str = "### ") -> dict[str, list[str]]:
    """The flags of each group's table under the page's '## Flags', by the group's heading."""
    section = page.read_text().split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    groups: dict[str, list[str]] = {}
    current = ""
    for line in section.splitlines():
        if line.startswith(heading_level):
            current = line[len(heading_level) :].strip()
        for flag in re.findall(r"^\| (?:\w+ \| )?`(--[\w-]+)`", line):
            groups.setdefault(current, []).append(flag)
    return groups


def test_the_run_flags_in_the_docs_are_the_parser_s_group_by_group():
    parser = run_parser()
    groups = {
        g.title.split(" (")[0]: [a.option_strings[0] for a in g._group_actions]
        for g in parser._action_groups
        if g.title not in ("options", "positional arguments")
    }
    assert documented_flags(REPO / "docs" / "running.md") == groups


def test_the_analysis_flags_in_the_docs_are_the_parser_s():
    commands = analysis_parser()._subparsers._group_actions[0].choices
    parsed = {
        name: sorted(a.option_strings[0] for a in sub._actions if a.option_strings and a.option_strings[0] != "-h")
        for name, sub in commands.items()
    }
    rows = re.findall(r"^\| (\w+) \| `(--[\w-]+)`", (REPO / "docs" / "report.md").read_text(), flags=re.M)
    documented = {name: sorted(f for n, f in rows if n == name) for name in parsed}
    assert documented == parsed


def test_the_readme_stays_a_front_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150
