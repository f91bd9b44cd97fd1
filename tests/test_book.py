"""The book's structure: the table of contents matches book/, and each chapter follows the house rules."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]*_*.ipynb"))


def toc_files():
    return re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text())


def cells(path, kind):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == kind]


def test_toc_lists_every_chapter_in_order():
    chapters = [f for f in toc_files() if re.match(r"book/\d\d_", f)]
    assert chapters == [f"book/{p.stem}" for p in CHAPTERS]
    assert "root: book/intro" in (ROOT / "_toc.yml").read_text()
    assert (ROOT / "book" / "intro.ipynb").exists()
    assert toc_files()[-1] == "book/glossary", "the glossary closes the book"


def test_glossary_terms_are_defined():
    """Every {term}`...` used in the book names an entry of book/glossary.md (Sphinx would only warn)."""
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([^\s`{].*)$", "\n".join(re.findall(r"```\{glossary\}\n(.*?)```", text, re.S)), re.M))
    assert {"B", "T", "C", "nh", "hs", "V", "block_size", "logits"} <= defined
    pages = [ROOT / "book" / "glossary.md", *sorted((ROOT / "book").glob("*.ipynb"))]
    for page in pages:
        src = page.read_text(encoding="utf-8")
        for use in re.findall(r"\{term\}`([^`]+)`", src):
            name = re.sub(r"^.*<(.+)>$", r"\1", use)
            assert name in defined, f"{page.name}: {{term}}`{use}` is not in the glossary"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_house_rules(path):
    md, code = "\n".join(cells(path, "markdown")), "\n".join(cells(path, "code"))
    assert len(re.findall(r"^# ", md, flags=re.M)) == 1, "one '# Title' per chapter"
    assert re.search(r"^## Try this", md, flags=re.M), "a 'Try this' section"
    assert "get_device(" in code, "picks cuda, then mps, then cpu"
    assert re.search(r"^\s*(assert |torch\.testing\.assert_close)", code, flags=re.M), "asserts that prove it"
    assert "plt." in code or "matplotlib" in code, "at least one figure"


def test_book_sh_names_the_chapters_whose_execution_failed(tmp_path):
    """tools/executed.py (run by tools/book.sh after every build) finds a chapter whose current code has no
    successful execution in the cache, which is what a failing cell leaves behind."""
    import nbformat
    import sys as _sys
    from jupyter_cache import get_cache

    _sys.path.insert(0, str(ROOT / "tools"))
    import executed

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, str(path))
    cache_dir = tmp_path / "cache"
    assert executed.unexecuted([path], cache_dir) == [path]  # never executed
    get_cache(str(cache_dir)).cache_notebook_file(str(path), check_validity=False)
    assert executed.unexecuted([path], cache_dir) == []
    nb.cells[0].source = "x = 2"  # the code changed since: its old execution does not count
    nbformat.write(nb, str(path))
    assert executed.unexecuted([path], cache_dir) == [path]
