"""tools/crossref.py: mentions of other chapters become links, once, and nothing else changes."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("crossref", ROOT / "tools" / "crossref.py")
crossref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(crossref)

KNOWN = {1: Path("01_data.ipynb"), 3: Path("03_attention.ipynb"), 5: Path("05_gpt.ipynb")}
TITLES = {1: "Data as integer sequences", 3: "Causal self-attention", 5: "The GPT model"}


def link(text, here=5):
    notes = []
    return crossref.link_text(text, here, KNOWN, TITLES, notes, "test"), notes


def test_a_mention_with_its_title_becomes_one_link():
    out, notes = link("As chapter 3, *Causal\nself-attention*, showed.")
    assert out == "As [chapter 3, *Causal\nself-attention*](03_attention.ipynb), showed."
    assert notes == []


def test_only_the_first_mention_in_a_cell_and_never_twice():
    once, _ = link("Chapter 1 and chapter 3; later chapter 1's dataset.")
    assert once == "[Chapter 1](01_data.ipynb) and [chapter 3](03_attention.ipynb); later chapter 1's dataset."
    assert link(once)[0] == once


def test_code_math_headings_links_plurals_and_itself_are_left_alone():
    for text in ["# Chapter 3 recap", "`chapter 3`", "$chapter 3$", "[see chapter 3](x.md)",
                 "chapters 3 to 5", "chapter 3-5", "chapter 5 (this one)", "chapter 9 (not a chapter)"]:
        assert link(text)[0] == text, text


def test_a_wrong_title_is_reported():
    out, notes = link("chapter 3, *Attention*")
    assert out == "[chapter 3, *Attention*](03_attention.ipynb)"
    assert notes and "Causal self-attention" in notes[0]


def test_the_book_notebooks_round_trip(tmp_path):
    """On a copy of a real chapter: a second run changes nothing, and code cells are untouched."""
    import json
    import shutil

    src = ROOT / "book" / "05_gpt.ipynb"
    copy = tmp_path / src.name
    shutil.copy(src, copy)
    assert crossref.main([str(copy)]) == 0
    first = copy.read_text(encoding="utf-8")
    assert crossref.main(["--check", str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == first
    code = lambda p: [c["source"] for c in json.loads(Path(p).read_text())["cells"] if c["cell_type"] == "code"]
    assert code(copy) == code(src)
