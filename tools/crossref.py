"""Link the chapters' mentions of other chapters: `python tools/crossref.py [--check] [NOTEBOOK ...]`.

In the markdown cells of the chapters (default: every book/NN_name.ipynb), the first mention of
another chapter in a cell, "chapter 3" or "chapter 3, *Causal self-attention*" (the title may
wrap onto the next line), becomes a link to that chapter's page:
`[chapter 3, *Causal self-attention*](03_attention.ipynb)`. Headings, code, math and text that
is already a link are left alone, and so are plural mentions ("chapters 3 to 5") and a chapter's
mentions of itself, so a second run changes nothing. An italic title that is not the chapter's
real title is reported (the link is still made).

--check: change nothing; exit 1 and list the mentions that would become links.
Notebooks are written in the form `tools/notebooks.py clean` writes (outputs untouched).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebooks import dumps  # noqa: E402  (the one notebook format the tools write)

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

MENTION = re.compile(r"(?<![\w\[/#])([Cc]hapter) (\d{1,2})(?![\d\w-]|\s*(?:to|and|-|–)\s*\d)"
                     r"(?:(,\s+)\*([^*]+?)\*)?")
# spans left alone: fenced code, inline code, display and inline math, links and images, headings
PROTECTED = re.compile(
    r"```.*?```|~~~.*?~~~|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|!?\[[^\]]*\]\([^)]*\)|\{[a-z]+\}`[^`]*`|^#+ [^\n]*$|<[^>\n]+>",
    re.S | re.M)


def chapters() -> dict[int, Path]:
    return {int(p.name[:2]): p for p in sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))}


def title(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            m = re.search(r"^# (.+)$", "".join(cell["source"]), re.M)
            if m:
                return m.group(1).strip()
    return ""


def link_text(text: str, here: int, known: dict[int, Path], titles: dict[int, str],
              notes: list[str], where: str) -> str:
    """`text` with the first mention of each other chapter made a link."""
    protected = [(m.start(), m.end()) for m in PROTECTED.finditer(text)]
    out, pos = [], 0
    # a chapter this cell already links to (an earlier run, or by hand) is not linked again
    linked = {int(n) for n in re.findall(r"\]\((\d\d)_\w+\.ipynb", text)}
    for m in MENTION.finditer(text):
        n = int(m.group(2))
        if n == here or n not in known or n in linked:
            continue
        if any(a <= m.start() < b for a, b in protected):
            continue
        label = m.group(0)
        given = m.group(4)
        if given and re.sub(r"\s+", " ", given) != titles[n]:
            notes.append(f"{where}: chapter {n} is called *{titles[n]}*, not *{re.sub(chr(10), ' ', given)}*")
        out.append(text[pos:m.start()])
        out.append(f"[{label}]({known[n].name})")
        pos = m.end()
        linked.add(n)
    out.append(text[pos:])
    return "".join(out)


def process(path: Path, known: dict[int, Path], titles: dict[int, str], notes: list[str]) -> tuple[str, int]:
    """The notebook's new JSON text, and how many links it gained."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    here = int(path.name[:2]) if path.name[:2].isdigit() else -1
    added = 0
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        new = link_text(src, here, known, titles, notes, f"{path.name} cell {i}")
        if new != src:
            added += new.count("](") - src.count("](")
            cell["source"] = new.splitlines(keepends=True)
    return dumps(nb), added


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a mention is unlinked")
    ap.add_argument("notebooks", nargs="*", type=Path)
    args = ap.parse_args(argv)
    known = chapters()
    titles = {n: title(p) for n, p in known.items()}
    paths = args.notebooks or list(known.values())
    notes: list[str] = []
    pending = []
    for path in paths:
        text, added = process(path, known, titles, notes)
        if added:
            pending.append(f"{path.name}: {added} link(s)")
            if not args.check:
                path.write_text(text, encoding="utf-8")
    for note in notes:
        print("note:", note)
    verb = "would link" if args.check else "linked"
    for line in pending:
        print(verb, line)
    if not pending:
        print("every mention of another chapter is already a link")
    return 1 if (args.check and pending) else 0


if __name__ == "__main__":
    sys.exit(main())
