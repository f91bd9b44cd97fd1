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


def test_the_introductions_map_has_a_row_for_every_chapter():
    """The browser test checks the built links; this catches a missing row without a site build."""
    intro = "\n".join(cells(ROOT / "book" / "intro.ipynb", "markdown"))
    rows = re.findall(r"^\| \{doc\}`(\d\d\w*)`", intro, flags=re.M)
    assert rows == [p.stem for p in CHAPTERS], f"the map's rows {rows} differ from book/'s chapters"


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


def try_this_items(nb: dict) -> list[int]:
    """The item numbers of a chapter's numbered "Try this" list."""
    (text,) = ["".join(c["source"]) for c in nb["cells"]
               if c["cell_type"] == "markdown" and re.search(r"^## Try this", "".join(c["source"]), re.M)]
    return [int(n) for n in re.findall(r"^(\d+)\. ", text, flags=re.M)]


def solved_items(nb: dict) -> set[int]:
    """Items with a solution: a folded code cell labelled "Solution N", or a dropdown "Solution N"."""
    solved = set()
    for c in nb["cells"]:
        src = "".join(c["source"])
        meta = c.get("metadata", {})
        label = meta.get("mystnb", {}).get("code_prompt_show", "")
        if c["cell_type"] == "code" and "hide-cell" in meta.get("tags", []) and re.fullmatch(r"Solution \d+", label):
            solved.add(int(label.split()[1]))
        if c["cell_type"] == "markdown":
            solved |= {int(n) for n in re.findall(r"^:::\{dropdown\} Solution (\d+)", src, flags=re.M)}
    return solved


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_ends_with_a_summary_and_solved_exercises(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    md = [("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "markdown"]
    (summary,) = [m for m in md if m.startswith("## Summary")]
    bullets = re.findall(r"^- ", summary, flags=re.M)
    assert 3 <= len(bullets) <= 5, f"a summary of 3 to 5 points, not {len(bullets)}"
    assert md.index(summary) == next(i for i, m in enumerate(md) if m.startswith("## Try this")) - 1, \
        "the summary comes right before the exercises"
    items = try_this_items(nb)
    assert items == list(range(1, len(items) + 1)) and 3 <= len(items) <= 5, f"a numbered list of 3 to 5: {items}"
    missing = set(items) - solved_items(nb)
    assert not missing, f"exercises without a solution: {sorted(missing)}"


def test_the_solution_check_catches_a_missing_solution():
    nb = json.loads(CHAPTERS[0].read_text(encoding="utf-8"))
    assert set(try_this_items(nb)) <= solved_items(nb)
    nb["cells"] = [c for c in nb["cells"] if not "".join(c["source"]).startswith("# Solution 1")
                   and ":::{dropdown} Solution 1" not in "".join(c["source"])]
    assert 1 not in solved_items(nb)


CONCEPT_FIGURES = {  # the pictures a reader must hold in their head, each drawn by code in its chapter
    "03_attention": ["figure-qkv", "figure-reshape"], "04_block": ["figure-block"], "06_trainer": ["figure-loop"],
    "10_bpe": ["figure-bpe"], "12_fast_generation": ["figure-kvcache"], "13_fast_training": ["figure-bits"],
    "11_gpt2_weights": ["figure-hfmap"], "14_training": ["figure-resume"],
    "16_modern_gpt": ["figure-rope", "figure-gqa"], "17_llama_checkpoints": ["figure-llama-names", "figure-llama3"],
    "18_instruction_tuning": ["figure-padding", "figure-latency"],
    "19_when_training_breaks": ["figure-memory"],
}


@pytest.mark.parametrize("stem", CONCEPT_FIGURES)
def test_concept_figures_are_drawn_in_their_chapter(stem):
    nb = json.loads((ROOT / "book" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    figures = {c["id"]: c for c in nb["cells"] if c.get("id", "").startswith("figure-")}
    for cid in CONCEPT_FIGURES[stem]:
        cell = figures[cid]
        src = "".join(cell["source"])
        assert src.startswith("# The picture:") and "plt.show()" in src, cid
        assert "hide-input" in cell["metadata"].get("tags", []), f"{cid}: the drawing code is folded away"


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


def test_ci_ends_with_each_chapters_execution_time(tmp_path, capsys):
    """`tools/executed.py --times` (the end of .ci/run) reads the seconds the cache recorded for each
    chapter's current code, slowest first, and says which chapter has none."""
    import nbformat
    import sys as _sys
    from jupyter_cache import get_cache

    _sys.path.insert(0, str(ROOT / "tools"))
    import executed

    cache_dir, paths = tmp_path / "cache", []
    for name, code, seconds in [("01_fast", "x = 1", 2.5), ("02_slow", "y = 1", 40.0), ("03_new", "z = 1", None)]:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        paths.append(tmp_path / f"{name}.ipynb")
        nbformat.write(nb, str(paths[-1]))
        if seconds is not None:
            get_cache(str(cache_dir)).cache_notebook_file(str(paths[-1]), data={"execution_seconds": seconds},
                                                          check_validity=False)
    seconds = executed.execution_seconds(paths, cache_dir)
    assert seconds == dict(zip(paths, [2.5, 40.0, None]))
    executed.print_times(seconds)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in lines[1:3]] == ["02_slow", "01_fast"], lines
    assert "03_new (no time" in lines[3] and lines[4].split()[:2] == ["42.5", "in"], lines
