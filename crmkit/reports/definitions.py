"""The KPI definitions page: the core's ``kpis.md`` (the repository's ``docs/kpis.md``) and each plugin's
definitions file (``crmkit_register_definitions``), rendered with markdown-it.

Links to the other documentation pages become plain text (the pages are not shipped); an explicit
``<a id="...">`` before a section is what a report's ``definition`` names.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

SOURCE = Path(__file__).resolve().parent / "kpis.md"
_DOC_LINK = re.compile(r"\[([^\]]+)\]\((?!https?:|#)[^)]*\)")


def definitions_html(files: tuple[Path, ...] = ()) -> Markup:
    """The core's definitions, then those of ``files``, as one HTML fragment."""
    return Markup("\n".join(_html(path) for path in (SOURCE, *files)))


@cache
def _html(path: Path) -> str:
    text = _DOC_LINK.sub(r"\1", path.read_text(encoding="utf-8"))
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def anchors(files: tuple[Path, ...] = ()) -> set[str]:
    """The section anchors the definitions declare (``<a id="...">``)."""
    found: set[str] = set()
    for path in (SOURCE, *files):
        found.update(re.findall(r'<a id="([a-z0-9-]+)"></a>', path.read_text(encoding="utf-8")))
    return found
