"""The README and the docs/ pages point at things that exist.

Pure file checks, no network: every relative link (and image) in README.md, docs/*.md and the
READMEs of the folders the README's layout names resolves to a file or folder of the repository,
an anchor to a heading that exists; every folder or module the layout section names exists, and
so does every file it names inside one. Links to other sites are not followed.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LAYOUT_HEADING = "## Project layout"

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
# [text](target) and ![alt](target); the text may hold code spans and one level of brackets.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
LAYOUT_ITEM = re.compile(r"^- `([^`\s]+)`", re.M)
PATH_LIKE = re.compile(r"^[\w.-]+(?:/[\w.-]+)*(?:/|\.[A-Za-z0-9]+)$")


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where a `[x](y)` is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a Markdown page offers: its headings' slugs (numbered as GitHub numbers
    repeats) and explicit `id`/`name` attributes."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    text = page.read_text(encoding="utf-8")
    found.update(re.findall(r"<a\s[^>]*?(?:id|name)=\"([^\"]+)\"", text, re.I))
    return found


def links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    body = prose(text)
    return LINK.findall(body) + REFERENCE.findall(body) + HTML_LINK.findall(body)


def layout_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.find(LAYOUT_HEADING)
    assert start >= 0, f"README.md has no '{LAYOUT_HEADING}' section"
    rest = text[start + len(LAYOUT_HEADING) :]
    end = re.search(r"^#{1,2} ", rest, re.M)
    return rest[: end.start()] if end else rest


def layout_items() -> list[tuple[str, str]]:
    """(name, its bullet's text) for each `- `name`` bullet of the layout section."""
    section = layout_section()
    items = list(LAYOUT_ITEM.finditer(section))
    ends = [m.start() for m in items[1:]] + [len(section)]
    return [(m.group(1), section[m.start() : end]) for m, end in zip(items, ends, strict=True)]


def pages() -> list[Path]:
    """README.md, docs/*.md, and the README.md of every folder the layout names."""
    found = [README, *sorted((REPO / "docs").glob("*.md"))]
    for name, _ in layout_items():
        readme = REPO / name / "README.md"
        if name.endswith("/") and readme.is_file():
            found.append(readme)
    return found


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in links(page):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # another site (or mailto:): not followed
        path_part, _, fragment = target.partition("#")
        path_part = unquote(path_part.split("?")[0])
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(REPO)}: ({target})"
        if not resolved.is_relative_to(REPO):
            problems.append(f"{where} leaves the repository")
        elif not resolved.exists():
            problems.append(f"{where} -> {path_part}: no such file or folder")
        elif fragment and resolved.suffix == ".md" and unquote(fragment) not in anchors(resolved):
            problems.append(f"{where}: no heading #{fragment} in {resolved.relative_to(REPO)}")
    return problems


def test_the_link_checker_sees_links_and_skips_code(tmp_path):
    """The checks below would pass vacuously if the parser found nothing."""
    page = tmp_path / "page.md"
    page.write_text(
        "# A title\n\n## Second `one` (here)\n\n"
        "[ok](page.md#a-title) ![img](gone.png) [`code` text](page.md#second-one-here)\n"
        "[bad anchor](#nowhere) [web](https://example.com/x) `[not](a-link.md)`\n\n"
        "```\n[not](either.md)\n```\n",
        encoding="utf-8",
    )
    assert links(page) == [
        "page.md#a-title",
        "gone.png",
        "page.md#second-one-here",
        "#nowhere",
        "https://example.com/x",
    ]
    assert anchors(page) == {"a-title", "second-one-here"}


def test_readme_links_to_every_docs_page_and_the_deploy_guide():
    targets = {t.partition("#")[0] for t in links(README)}
    docs = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert docs, "docs/ has no pages"
    missing = sorted(docs - targets)
    assert not missing, f"README.md does not link to {missing}"
    assert "infra/README.md" in targets


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    assert links(page) or page != README, "no links found in README.md: is the parser broken?"
    problems = broken_links(page)
    assert not problems, "\n".join(problems)


def test_layout_names_what_exists():
    """Each `- `name`` of the layout is a top-level folder or module of the repository, and
    each file or folder its bullet names in code (`main.py`, `models/`) is inside it."""
    items = layout_items()
    assert len(items) >= 5, f"the layout section lists only {[n for n, _ in items]}"
    problems = []
    for name, bullet in items:
        top = REPO / name
        if "/" in name.rstrip("/"):
            problems.append(f"{name}: the layout names top-level folders and modules only")
        if not top.exists():
            problems.append(f"{name}: no such folder or module at the repository's root")
            continue
        if not top.is_dir():
            continue
        for span in re.findall(r"`([^`]+)`", bullet)[1:]:
            if PATH_LIKE.match(span) and not (top / span).exists():
                problems.append(f"{name}: names `{span}`, but {name}{span} does not exist")
    assert not problems, "\n".join(problems)
