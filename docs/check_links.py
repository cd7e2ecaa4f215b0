"""Checks that every relative link and image in README.md and docs/*.md (and the Markdown files
they link to) points to an existing file and, for '#anchor' links, to a heading there.

Anchors follow GitHub's rule: heading text lower-cased, everything but letters, digits, '_', '-'
and spaces dropped, spaces to '-', '-1', '-2', ... for repeats. Links inside code are ignored;
http(s)/mailto links are listed but not fetched.

    python docs/check_links.py        # prints each link and its result; exit status 1 if any is broken
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SRC = re.compile(r"""<(?:img|a)\b[^>]*\b(?:src|href)=["']([^"']+)["']""", re.I)
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str):
    """(line number, line with inline code removed) for lines outside fenced code blocks."""
    fenced = False
    for no, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield no, re.sub(r"`[^`]*`", "", line)


def slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)      # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            s = slug(m.group(2))
            n = seen.get(s, 0)
            out.add(s if n == 0 else f"{s}-{n}")
            seen[s] = n + 1
    return out


def check(md: Path) -> tuple[list[str], list[Path]]:
    problems, linked_md = [], []
    for no, line in prose_lines(md.read_text(encoding="utf-8")):
        for target in LINK.findall(line) + HTML_SRC.findall(line):
            where = f"{md.relative_to(ROOT)}:{no}: {target}"
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                print(f"external  {where}")
                continue
            file_part, _, anchor = target.partition("#")
            dest = (md.parent / file_part).resolve() if file_part else md
            if not dest.exists():
                problems.append(f"missing file  {where}")
                continue
            if anchor:
                if dest.suffix.lower() != ".md":
                    problems.append(f"anchor on a non-Markdown file  {where}")
                elif anchor not in anchors(dest):
                    problems.append(f"missing anchor  {where}")
                    continue
            if dest.suffix.lower() == ".md" and dest != md:
                linked_md.append(dest)
            print(f"ok        {where}")
    return problems, linked_md


def main() -> int:
    todo = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    done: set[Path] = set()
    problems: list[str] = []
    while todo:
        md = todo.pop(0).resolve()
        if md in done:
            continue
        done.add(md)
        found, linked = check(md)
        problems += found
        todo += [p for p in linked if p not in done]
    print(f"\nchecked {len(done)} Markdown files: {', '.join(str(p.relative_to(ROOT)) for p in sorted(done))}")
    for p in problems:
        print("BROKEN    " + p.split("  ", 1)[1] + "  (" + p.split("  ", 1)[0] + ")")
    print(f"{len(problems)} broken link(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
