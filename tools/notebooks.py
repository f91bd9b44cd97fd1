"""Keep the chapters clean: `python tools/notebooks.py {clean,check,record} [NOTEBOOK ...]`.

Chapters are committed without outputs, execution counts or editor metadata, so a diff shows
only what a person changed. The one exception: a cell tagged `nbval-check-output` keeps its
text output (and the execution count 1, without which nbval takes it for an unrun cell),
because nbval compares that cell's fresh output with it (`record` runs a chapter and stores
those outputs). A `#| default_exp` cell is tagged `remove-output`, so the module docstring it
ends with is not echoed on the website. The website gets every output by executing the chapters.

- clean:  rewrite the notebooks in the clean form (default: every book/*.ipynb)
- check:  exit 1 and name the notebooks that are not clean
- record: execute the notebooks and store the outputs of their checked cells
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = "nbval-check-output"
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info", "colab", "accelerator")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


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
        cell["metadata"] = {"tags": tags} if tags else {}
        if not cell.get("attachments"):
            cell.pop("attachments", None)
        if cell["cell_type"] == "code":
            outs = [clean_output(o) for o in cell.get("outputs", [])] if is_checked(cell) else []
            cell["outputs"] = [o for o in outs if o is not None]
            cell["execution_count"] = 1 if cell["outputs"] else None
        for key in ("outputs", "execution_count"):
            if cell["cell_type"] != "code":
                cell.pop(key, None)
    return nb


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def record(path: Path, timeout: int = 900) -> dict:
    """Run the chapter in its folder and keep the outputs of its checked cells."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return clean(json.loads(nbformat.writes(nb)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["clean", "check", "record"])
    ap.add_argument("notebooks", nargs="*", type=Path)
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    dirty = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if args.command == "record":
            print(f"executing {path} ...", flush=True)
            path.write_text(dumps(record(path)), encoding="utf-8")
            continue
        fresh = dumps(clean(json.loads(text)))
        if fresh != text:
            dirty.append(path)
            if args.command == "clean":
                path.write_text(fresh, encoding="utf-8")
    if args.command == "check" and dirty:
        print("These notebooks carry outputs, execution counts or metadata: "
              + ", ".join(str(p) for p in dirty)
              + "\nRun `python tools/notebooks.py clean` (and `record` for checked cells).", file=sys.stderr)
        return 1
    if args.command == "clean" and dirty:
        print("cleaned " + ", ".join(str(p) for p in dirty))
    return 0


if __name__ == "__main__":
    sys.exit(main())
