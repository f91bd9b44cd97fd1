"""Export the package from the book: `python tools/export.py [--check]`.

Notebooks are the source of truth. In a chapter, a code cell whose first line is

    #| default_exp model          names the module this chapter exports to (mingpt/model.py);
                                  a docstring in that cell becomes the module's docstring
    #| export                     copies the cell into that module
    #| export utils               copies the cell into mingpt/utils.py instead; in the first
                                  cell that reaches a module no chapter declares as its
                                  default, a leading docstring becomes the module's docstring

(nbdev's spelling). Every module gets a header naming the chapter(s) to edit and an
`__all__` of its public top-level names (a function decorated with `@add_to_class(C)` is a
method of C, not a name of the module, and is left out). The output depends only on the notebooks, so
exporting twice gives the same bytes; `--check` exits 1 when mingpt/ differs from a fresh
export, which is how CI catches a hand-edited or stale package.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIRECTIVE = "#|"


@dataclass
class Module:
    name: str
    doc: str | None = None
    chapters: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    cell_chapters: list[str] = field(default_factory=list)  # the chapter of each cell, in order


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def split_directives(source: str) -> tuple[list[list[str]], str]:
    """Leading `#| key args` lines of a cell, parsed, and the code after them."""
    lines = source.splitlines()
    directives = []
    while lines and lines[0].strip().startswith(DIRECTIVE):
        directives.append(lines.pop(0).strip()[len(DIRECTIVE):].split())
    return directives, "\n".join(lines).strip("\n")


def collect(notebooks: list[Path], root: Path = ROOT) -> dict[str, Module]:
    """Walk the notebooks in order and gather each module's cells."""
    modules: dict[str, Module] = {}
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        rel = nb_path.resolve().relative_to(root).as_posix()
        default = None
        for cell in nb.get("cells", []):
            if cell.get("cell_type") != "code":
                continue
            directives, code = split_directives(cell_source(cell))
            for d in directives:
                if not d:
                    continue
                key, args = d[0], d[1:]
                if key == "default_exp":
                    if len(args) != 1:
                        raise SystemExit(f"{rel}: '#| default_exp' takes one module name, got {args}")
                    default = args[0]
                    mod = modules.setdefault(default, Module(default))
                    doc = _leading_docstring(code)
                    if doc and mod.doc is None:
                        mod.doc = doc
                    if rel not in mod.chapters:
                        mod.chapters.append(rel)
                elif key == "export":
                    target = args[0] if args else default
                    if target is None:
                        raise SystemExit(f"{rel}: '#| export' before any '#| default_exp'; "
                                         "name the module ('#| export NAME') or declare a default")
                    mod = modules.setdefault(target, Module(target))
                    if rel not in mod.chapters:
                        mod.chapters.append(rel)
                    if not mod.cells and mod.doc is None and target != default:
                        mod.doc, code = _split_docstring(code)  # a module reached only by '#| export NAME'
                    mod.cells.append(code)
                    mod.cell_chapters.append(rel)
    return modules


def _leading_docstring(code: str) -> str | None:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    return ast.get_docstring(tree, clean=True)


def _split_docstring(code: str) -> tuple[str | None, str]:
    """A leading docstring of the cell, and the code after it (the code unchanged when there is none)."""
    doc = _leading_docstring(code)
    if doc is None:
        return None, code
    end = ast.parse(code).body[0].end_lineno
    return doc, "\n".join(code.splitlines()[end:]).strip("\n")


def _adds_to_class(node: ast.AST) -> bool:
    """Whether a function is decorated with `@add_to_class(...)`: a method of a class, not a name of the module."""
    return any(isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", None)) == "add_to_class"
               for d in getattr(node, "decorator_list", []))


def public_names(code: str) -> list[str]:
    names = []
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not _adds_to_class(node):
                names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if not n.startswith("_")]


def render(mod: Module) -> str:
    """The text of mingpt/<name>.py. Import lines repeated from an earlier cell are dropped."""
    seen_imports: set[str] = set()
    bodies = []
    for code in mod.cells:
        kept = []
        for line in code.splitlines():
            is_import = line.startswith(("import ", "from ")) and not line.rstrip().endswith(("(", "\\"))
            if is_import and line in seen_imports:
                continue
            if is_import:
                seen_imports.add(line)
            kept.append(line)
        bodies.append("\n".join(kept).strip("\n"))
    body = "\n\n\n".join(b for b in bodies if b)
    names = [n for b in bodies for n in public_names(b)]
    names = list(dict.fromkeys(names))
    edit = ", ".join(mod.chapters)
    head = f'"""{mod.doc}"""\n' if mod.doc else ""
    head += (f"# AUTOGENERATED, edit {edit} and run `python tools/export.py`; "
             "changes made here are overwritten.\n\n")
    all_ = "__all__ = [" + ", ".join(repr(n) for n in names) + "]\n\n"
    return head + all_ + body + "\n"


def export(book: Path = ROOT / "book", root: Path = ROOT) -> dict[str, str]:
    """Rendered text of every module, keyed by file name (nothing is written)."""
    notebooks = sorted(book.glob("*.ipynb"))
    return {f"{m.name}.py": render(m) for m in collect(notebooks, root).values()}


def chapter_order(modules: dict[str, Module]) -> dict[str, int]:
    """Each chapter that exports something, numbered in book order (the notebooks' sorted names)."""
    chapters = sorted({ch for m in modules.values() for ch in m.cell_chapters})
    return {ch: i for i, ch in enumerate(chapters)}


def mingpt_imports(code: str) -> list[tuple[str, list[str]]]:
    """Every import of a mingpt module anywhere in `code` (function bodies too): (module, names imported)."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[1], []) for a in node.names if a.name.startswith("mingpt.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "mingpt":  # from mingpt import kvcache
                found += [(a.name, []) for a in node.names]
            elif node.module.startswith("mingpt."):
                found.append((node.module.split(".")[1], [a.name for a in node.names]))
    return found


def import_problems(modules: dict[str, Module]) -> list[str]:
    """What breaks the rule that a chapter's code imports only what earlier chapters (or it) exported.

    Reported: an import of a module that no chapter up to the importing cell's exports to (a forward
    import), of a module that does not exist, of a private name of another module, and any cycle
    between modules (lazy imports inside functions count).
    """
    order = chapter_order(modules)
    first = {name: min(order[ch] for ch in m.cell_chapters) for name, m in modules.items() if m.cell_chapters}
    problems, edges = [], {name: set() for name in modules}
    for name, mod in modules.items():
        for code, chapter in zip(mod.cells, mod.cell_chapters):
            for target, names in mingpt_imports(code):
                if target == name:
                    continue
                if target not in first:
                    problems.append(f"{chapter}: mingpt.{name} imports mingpt.{target}, which no chapter exports")
                    continue
                edges[name].add(target)
                if first[target] > order[chapter]:
                    problems.append(f"{chapter}: mingpt.{name} imports mingpt.{target}, which a later chapter "
                                    f"({modules[target].cell_chapters[0]}) exports; move the code to that chapter")
                private = [n for n in names if n.startswith("_")]
                if private:
                    problems.append(f"{chapter}: mingpt.{name} imports private {', '.join(private)} from "
                                    f"mingpt.{target}; make it public where it is taught")
    problems += [f"import cycle: {' -> '.join('mingpt.' + m for m in cycle)}" for cycle in _cycles(edges)]
    return problems


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of a directed graph found by a depth-first search, each once (as met first)."""
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


def generated_files(out: Path) -> list[Path]:
    return [p for p in sorted(out.glob("*.py")) if "AUTOGENERATED" in p.read_text(encoding="utf-8")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if mingpt/ differs from a fresh export")
    args = ap.parse_args(argv)
    out = ROOT / "mingpt"
    fresh = export()
    stale = [p for p in generated_files(out) if p.name not in fresh]
    if args.check:
        bad = [n for n, text in fresh.items()
               if not (out / n).exists() or (out / n).read_text(encoding="utf-8") != text]
        bad += [p.name for p in stale]
        if bad:
            print("mingpt/ is out of sync with the notebooks: " + ", ".join(sorted(bad)) +
                  "\nRun `python tools/export.py` and commit the result.", file=sys.stderr)
            return 1
        problems = import_problems(collect(sorted((ROOT / "book").glob("*.ipynb"))))
        if problems:
            print("the chapters' modules import in a wrong direction:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        print(f"mingpt/ is in sync with the notebooks ({len(fresh)} modules), each importing only earlier chapters'.")
        return 0
    out.mkdir(exist_ok=True)
    for name, text in fresh.items():
        (out / name).write_text(text, encoding="utf-8")
    for p in stale:
        p.unlink()
    print(f"exported {len(fresh)} modules to {out.relative_to(ROOT)}/: " + ", ".join(sorted(fresh)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
