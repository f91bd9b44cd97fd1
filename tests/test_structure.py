"""The book's structure rules, checked on every test run (tools/test.sh):

- each chapter's exported code imports only modules that earlier chapters (or the same one)
  export, lazy imports inside functions included, never another module's private name, and the
  modules import one another without a cycle (tools/export.py's `import_problems`);
- no code cell is longer than 60 lines, so that a reader can take any cell in at once; a cell
  may be longer only with the tag `long-cell` and a first line `# long cell: <why>`.
Each rule is also shown to fail on a made-up violation, so a passing run means something.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import export  # noqa: E402
import notebooks  # noqa: E402

CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def test_modules_import_only_earlier_chapters_and_never_in_a_circle():
    problems = export.import_problems(export.collect(CHAPTERS))
    assert problems == [], "\n".join(problems)


def fake(**modules):
    """Modules from {name: [(chapter, code), ...]}, as export.collect returns them."""
    out = {}
    for name, cells in modules.items():
        out[name] = export.Module(name, cells=[c for _, c in cells], cell_chapters=[ch for ch, _ in cells])
    return out


def test_the_import_rule_catches_forward_imports_cycles_and_private_names():
    ok = fake(model=[("05.ipynb", "import torch")], hf=[("11.ipynb", "from mingpt.model import GPT")])
    assert export.import_problems(ok) == []
    lazy_forward = fake(model=[("05.ipynb", "def f():\n    from mingpt.hf import load\n    return load")],
                        hf=[("11.ipynb", "def load(): pass")])
    [problem] = export.import_problems(lazy_forward)  # forward, and hf does not import model: no cycle
    assert "05.ipynb: mingpt.model imports mingpt.hf, which a later chapter (11.ipynb) exports" in problem
    cycle = fake(model=[("05.ipynb", "import mingpt.hf")], hf=[("11.ipynb", "from mingpt.model import GPT")])
    problems = export.import_problems(cycle)
    assert any("import cycle: mingpt.hf -> mingpt.model -> mingpt.hf" in p for p in problems), problems
    private = fake(hf=[("11.ipynb", "def _names(): pass")], checkpoint=[("13.ipynb", "from mingpt.hf import _names")])
    assert export.import_problems(private) == [
        "13.ipynb: mingpt.checkpoint imports private _names from mingpt.hf; make it public where it is taught"]
    missing = fake(model=[("05.ipynb", "from mingpt import nowhere")])
    assert "which no chapter exports" in export.import_problems(missing)[0]


def test_no_code_cell_is_longer_than_60_lines():
    long = [f"{path.name} cell {cell.get('id')}: {n} lines"
            for path in CHAPTERS for cell, n in notebooks.long_cells(json.loads(path.read_text(encoding="utf-8")))]
    assert long == [], "split these cells (or tag one `long-cell` with a '# long cell: <why>' first line):\n" + \
        "\n".join(long)


def test_the_cell_length_rule_catches_a_long_cell_and_accepts_a_declared_exception():
    def nb(source, tags=()):
        return {"cells": [{"cell_type": "code", "id": "c1", "metadata": {"tags": list(tags)}, "source": source}]}

    sixty, sixty_one = "x = 1\n" * 60, "x = 1\n" * 61
    assert notebooks.long_cells(nb(sixty)) == []
    assert [n for _, n in notebooks.long_cells(nb(sixty_one))] == [61]
    assert [n for _, n in notebooks.long_cells(nb(sixty_one, ["long-cell"]))] == [61], "the tag alone is not enough"
    assert notebooks.long_cells(nb("# long cell: a table of 61 rows\n" + sixty, ["long-cell"])) == []
    assert notebooks.long_cells({"cells": [{"cell_type": "markdown", "source": sixty_one}]}) == []
