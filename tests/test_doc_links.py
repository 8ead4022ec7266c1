"""The docs stand alone: every link between pages leads to a page and a heading that exist, and neither the
docs nor the code point at a file outside the repository."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md", *(ROOT / "plugins").glob("*/README.md")])
SOURCES = sorted(
    p
    for folder in ("crmkit", "plugins", "examples", "bench")
    for p in (ROOT / folder).rglob("*")
    if p.suffix in {".py", ".md", ".toml", ".txt", ".html", ".j2", ".ini", ".cfg"}
    and ".venv" not in p.parts
    # what pip install -e writes (SOURCES.txt names files relative to the package), not the repository's
    and not any(part.endswith(".egg-info") for part in p.parts)
)
# the repository's own files are named relative to it; these are paths of some machine
FOREIGN_ROOT = re.compile(r"(?<![\w.:/~-])(?:/(?:work|home|root|Users|tmp|mnt|srv|opt)/|[A-Z]:\\\\|~/)\S*")
UP = re.compile(r"(?:\.\./)+[\w.-][\w./-]*")
MD_NAME = re.compile(r"(?<![\w/.-])([\w./-]*[A-Za-z][\w-]*\.md)\b")
LINK = re.compile(r"(?<!!)\[(?:[^\]]|\][^(])*?\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return anchors_of(page.read_text(encoding="utf-8"))


def anchors_of(text: str) -> set[str]:
    text = FENCE.sub("", text)
    seen: Counter[str] = Counter()
    out = set()
    for heading in HEADING.findall(text):
        base = slug(heading)
        out.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    out.update(re.findall(r"<a (?:name|id)=\"([^\"]+)\"", text))
    return out


def links(text: str) -> list[str]:
    return LINK.findall(FENCE.sub("", text))


def inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def test_the_pages_have_links_and_headings() -> None:
    """The checks below read something: the parser finds the links and anchors the pages do have."""
    guide = ROOT / "docs" / "plugin-guide.md"
    assert "architecture.md#input-limits" in links(guide.read_text(encoding="utf-8"))
    assert {"testing-a-plugin", "the-plugins-name", "migrations"} <= anchors(guide)
    assert slug("The `CRM` object") == "the-crm-object"
    assert slug("Retention triggers, the outbox and next actions") == "retention-triggers-the-outbox-and-next-actions"


def broken_links(page: Path, text: str) -> list[str]:
    """The links of ``text``, a page at ``page``, that lead nowhere."""
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not a file of the repository
            continue
        file, _, anchor = target.partition("#")
        if not file:
            if anchor not in anchors_of(text):
                broken.append(f"{target}: the page has no heading with anchor #{anchor}")
            continue
        path = page.parent / file
        if not inside(path) or not path.exists():
            broken.append(f"{target}: no file {file!r} in the repository")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: {path.name} has no heading with anchor #{anchor}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_between_pages_resolves_to_a_file_and_heading(page: Path) -> None:
    broken = broken_links(page, page.read_text(encoding="utf-8"))
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_catches_a_missing_page_and_a_missing_heading() -> None:
    page = ROOT / "docs" / "probe.md"  # where the text would live; only its links are read
    text = (
        "# Probe\n\n[a](architecture.md#no-such-heading) [b](missing.md) [c](#probe)"
        " [d](plugin-guide.md#migrations) [e](https://example.org/x.md) [f](../../outside.md) [g](#nowhere)\n"
    )
    assert broken_links(page, text) == [
        "architecture.md#no-such-heading: architecture.md has no heading with anchor #no-such-heading",
        "missing.md: no file 'missing.md' in the repository",
        "../../outside.md: no file '../../outside.md' in the repository",
        "#nowhere: the page has no heading with anchor #nowhere",
    ]


@pytest.mark.parametrize("path", [*PAGES, *SOURCES], ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_refers_to_a_file_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    problems = [f"a path of some machine: {m}" for m in FOREIGN_ROOT.findall(text)]
    problems += [f"{m} leaves the repository" for m in UP.findall(text) if not inside(path.parent / m)]
    for name in set(MD_NAME.findall(text)):
        candidates = [path.parent / name, ROOT / name, ROOT / "docs" / name]
        if not any(inside(c) and c.is_file() for c in candidates):
            problems.append(f"{name} is not a file of the repository")
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def test_the_outside_reference_check_catches_what_it_is_for(tmp_path: Path) -> None:
    text = "see ../shared/DESIGN.md and /work/notes.txt; docs/hooks.md is ours"
    assert FOREIGN_ROOT.findall(text) == ["/work/notes.txt;"]
    assert UP.findall(text) == ["../shared/DESIGN.md"]
    assert not inside(ROOT / "docs" / "../../shared/DESIGN.md")
    assert set(MD_NAME.findall(text)) == {"../shared/DESIGN.md", "docs/hooks.md"}
