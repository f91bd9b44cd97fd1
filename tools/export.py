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
        print(f"mingpt/ is in sync with the notebooks ({len(fresh)} modules).")
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
