"""Keep the chapters clean: `python tools/notebooks.py {clean,check,record,colab} [NOTEBOOK ...]`.

Chapters are committed without outputs, execution counts or editor metadata (a cell keeps its
tags and its `mystnb` settings, such as the label of a solution's toggle), so a diff shows only
what a person changed. The one exception: a cell tagged `nbval-check-output` keeps its
text output (and the execution count 1, without which nbval takes it for an unrun cell),
because nbval compares that cell's fresh output with it (`record` runs a chapter and stores
those outputs). A `#| default_exp` cell is tagged `remove-output`, so the module docstring it
ends with is not echoed on the website. The website gets every output by executing the chapters.

Every chapter also opens in Colab: after its title, a markdown cell with an "Open in Colab"
badge, then a code cell that installs the `mingpt` package when (and only when) it runs in
Colab, from the branch the launch button opens (`repository.branch` in _config.yml), so that
the package has exactly the code the chapter was written with, never touching Colab's own torch; chapters that train ask Colab for a GPU runtime in their metadata. Both cells are
tagged `remove-cell`: the website has Jupyter Book's own launch button instead, and needs no
network image. `colab` writes them (idempotently, keeping every other cell and output).

- clean:  rewrite the notebooks in the clean form (default: every book/*.ipynb)
- check:  exit 1 and name the notebooks that are not clean, or lack the Colab cells and metadata
- record: execute the notebooks and store the outputs of their checked cells
- colab:  insert or update the Colab badge, install cell and GPU metadata of the chapters
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = "nbval-check-output"
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info", "colab", "accelerator")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


MAX_CELL_LINES = 60  # a reader takes in a cell at once; split longer ones
LONG_CELL_TAG = "long-cell"  # the rare exception, with a first line "# long cell: <why>"


def long_cells(nb: dict) -> list[tuple[dict, int]]:
    """The code cells over MAX_CELL_LINES lines, with their lengths, except declared exceptions."""
    out = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        n = len(source.splitlines())
        declared = LONG_CELL_TAG in cell.get("metadata", {}).get("tags", []) and source.startswith("# long cell:")
        if n > MAX_CELL_LINES and not declared:
            out.append((cell, n))
    return out


def is_checked(cell: dict) -> bool:
    return CHECKED in cell.get("metadata", {}).get("tags", [])


def clean_output(out: dict) -> dict | None:
    """Text of an output only: images and HTML are not compared by nbval and are not kept."""
    if out["output_type"] == "stream":
        return {"name": out["name"], "output_type": "stream", "text": out["text"]}
    if out["output_type"] in ("execute_result", "display_data"):
        data = out.get("data", {})
        if "text/plain" not in data:
            return None
        res = {"data": {"text/plain": data["text/plain"]}, "metadata": {}, "output_type": out["output_type"]}
        if out["output_type"] == "execute_result":
            res["execution_count"] = 1
        return res
    return None  # errors are never stored


def clean(nb: dict) -> dict:
    nb = copy.deepcopy(nb)
    meta = nb.get("metadata", {})
    nb["metadata"] = {k: meta[k] for k in KEPT_NOTEBOOK_METADATA if k in meta}
    nb["metadata"]["kernelspec"] = dict(KERNELSPEC)
    nb["metadata"]["language_info"] = {"name": "python"}
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code" and "".join(cell["source"]).startswith("#| default_exp") \
                and "remove-output" not in tags:
            tags = tags + ["remove-output"]
        mystnb = cell.get("metadata", {}).get("mystnb")  # e.g. a solution toggle's label, shown by the website
        cell["metadata"] = ({"tags": tags} if tags else {}) | ({"mystnb": mystnb} if mystnb else {})
        if not cell.get("attachments"):
            cell.pop("attachments", None)
        if cell["cell_type"] == "code":
            outs = [clean_output(o) for o in cell.get("outputs", [])] if is_checked(cell) else []
            cell["outputs"] = [o for o in outs if o is not None]
            cell["execution_count"] = 1 if cell["outputs"] else None
        for key in ("outputs", "execution_count"):
            if cell["cell_type"] != "code":
                cell.pop(key, None)
        if nb.get("nbformat_minor", 0) >= 5 and "id" not in cell:  # nbformat 4.5 wants one; kept once given
            cell["id"] = uuid.uuid4().hex[:8]
    return nb


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def execute(path: Path, timeout: int = 900):
    """Run the chapter top to bottom in a fresh kernel, in its folder; the executed notebook (nbformat)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    return nb


def record(path: Path, timeout: int = 900) -> dict:
    """Run the chapter in its folder and keep the outputs of its checked cells."""
    import nbformat

    return clean(json.loads(nbformat.writes(execute(path, timeout))))


# --- Colab ---------------------------------------------------------------------------------
COLAB_TAG = "remove-cell"  # on the website these cells vanish: it has its own launch button
BADGE_ID, INSTALL_ID = "colab-badge", "colab-install"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# Chapters that ask Colab for a GPU runtime: those that train a model for real or benchmark
# one (6 the Trainer, 7 the sampling model, 8 addition, 9 Shakespeare, 10 BPE against characters,
# 12 and 13 speed, 14 training). A chapter not listed here gets one when its code builds a Trainer.
GPU_CHAPTERS = {"06", "07", "08", "09", "10", "12", "13", "14"}
COLAB_GPU = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}


def repository(config: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """("owner/name", branch) from `repository:` in _config.yml (the URL must be a GitHub one)."""
    import yaml  # jupyter-book's dependency; only the colab command and check need it

    repo = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("repository") or {}
    m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", str(repo.get("url", "")))
    if not m:
        raise SystemExit(f"{config}: repository.url must be https://github.com/OWNER/NAME, got {repo.get('url')!r}")
    return m.group(1), str(repo.get("branch") or "main")


def install_requirement(repo: str, branch: str) -> str:
    """What the Colab cell gives pip: the package from the branch whose notebook Colab opened."""
    return f"mingpt-book @ git+https://github.com/{repo}@{branch}"


def colab_url(repo: str, branch: str, path: Path) -> str:
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/book/{path.name}"


def colab_cells(path: Path, repo: str, branch: str) -> list[dict]:
    """The badge cell and the install cell of one chapter."""
    badge = f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repo, branch, path)})"
    install = f"""\
# In Colab, install the book's package from the branch the book's launch buttons open, so the
# code is the code the chapter was written with.
# It asks for torch>=2.1, which Colab has, so pip keeps Colab's own torch. Elsewhere: nothing.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "{install_requirement(repo, branch)}"], check=True)"""
    tags = {"tags": [COLAB_TAG]}
    return [{"cell_type": "markdown", "id": BADGE_ID, "metadata": dict(tags), "source": badge.splitlines(True)},
            {"cell_type": "code", "execution_count": None, "id": INSTALL_ID, "metadata": dict(tags),
             "outputs": [], "source": install.splitlines(True)}]


def is_colab_cell(cell: dict) -> bool:
    src = "".join(cell.get("source", ""))
    return cell.get("id") in (BADGE_ID, INSTALL_ID) or BADGE_IMAGE in src or '"google.colab" in sys.modules' in src


def wants_gpu(path: Path, nb: dict) -> bool:
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return path.name[:2] in GPU_CHAPTERS or "Trainer(" in code


def with_colab(path: Path, nb: dict, repo: str, branch: str) -> dict:
    """The notebook with its Colab cells (right after the title cell) and GPU metadata, nothing else changed."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb["cells"] if not is_colab_cell(c)]
    title = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                  and re.search(r"^# ", "".join(c["source"]), flags=re.M)), -1)
    nb["cells"] = cells[:title + 1] + colab_cells(path, repo, branch) + cells[title + 1:]
    meta = nb.setdefault("metadata", {})
    for key in COLAB_GPU:
        meta.pop(key, None)
    if wants_gpu(path, nb):
        meta.update(copy.deepcopy(COLAB_GPU))
    if nb.get("nbformat_minor", 0) < 5:  # cell ids need nbformat 4.5
        nb["nbformat_minor"] = 5
    return nb


def chapters(paths: list[Path]) -> list[Path]:
    """The numbered chapters among `paths` (intro pages and the like have no Colab cells)."""
    return [p for p in paths if re.match(r"\d\d_", p.name)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["clean", "check", "record", "colab"])
    ap.add_argument("notebooks", nargs="*", type=Path)
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    dirty, no_colab = [], []
    colab_args = repository() if args.command in ("check", "colab") else None
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if args.command in ("check", "colab") and path in chapters(paths):
            nb = json.loads(text)
            fresh = with_colab(path, nb, *colab_args)
            if fresh != nb:
                no_colab.append(path)
                if args.command == "colab":
                    path.write_text(dumps(fresh), encoding="utf-8")
        if args.command == "colab":
            continue
        if args.command == "record":
            print(f"executing {path} ...", flush=True)
            path.write_text(dumps(record(path)), encoding="utf-8")
            continue
        fresh = dumps(clean(json.loads(text)))
        if fresh != text:
            dirty.append(path)
            if args.command == "clean":
                path.write_text(fresh, encoding="utf-8")
    if args.command == "colab":
        print(("added or updated the Colab cells of " + ", ".join(str(p) for p in no_colab)) if no_colab
              else "the Colab cells and metadata are up to date")
        return 0
    if args.command == "check" and (dirty or no_colab):
        if dirty:
            print("These notebooks carry outputs, execution counts or metadata: "
                  + ", ".join(str(p) for p in dirty)
                  + "\nRun `python tools/notebooks.py clean` (and `record` for checked cells).", file=sys.stderr)
        if no_colab:
            print("These chapters lack their Colab badge, install cell or GPU metadata, or have stale ones: "
                  + ", ".join(str(p) for p in no_colab)
                  + "\nRun `python tools/notebooks.py colab` on them.", file=sys.stderr)
        return 1
    if args.command == "clean" and dirty:
        print("cleaned " + ", ".join(str(p) for p in dirty))
    return 0


if __name__ == "__main__":
    sys.exit(main())
