"""The book's expected results ("is my loss normal?"): `python tools/expected_results.py COMMAND`.

Every training cell of the book prints its final loss or accuracy. `ENTRIES` below says where
(chapter, cell id) and how to read it (a regular expression whose first group is the number). From
executions of the chapters this tool writes `mingpt/expected_results.json`, the table that chapter
19's `is_my_loss_normal` reads: for each entry its values over several seeds, their range and the
device and torch version they were recorded with. The table is generated, never typed by hand.

    record --seed K [--chapters 06 07 ...]   execute the chapters with every seed shifted by K*1000
                                             (torch, numpy and random), into _build/expected_runs/
    record --seed 0 --cache DIR              seed 0 is the chapters as they are: read it from the
                                             site build's execution cache instead of running again
    table                                    combine _build/expected_runs/ into the package's table
    check --cache DIR                        each entry, as the site build printed it, must lie in
                                             the table's normal band (CI runs this through
                                             tests/test_diagnose.py)

Shifting the seeds changes the initial weights, the batch order and dropout, not the data splits
(those use their own generators). A cell whose asserts hold only at the book's seed fails at
another one; `record` lists such cells, and the entries after them may then be missing.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "_build" / "expected_runs"
TABLE = ROOT / "mingpt" / "expected_results.json"


@dataclass(frozen=True)
class Entry:
    key: str  # "06-shakespeare": the chapter's number, then what was trained
    notebook: str  # in book/
    cell: str  # the cell's id
    pattern: str  # a regular expression; its first group is the number
    metric: str  # what the number is, with its unit
    better: str = "lower"  # "lower" (a loss) or "higher" (an accuracy)
    timed: bool = False  # trained for a fixed time, not a fixed number of steps: depends on the machine's speed


N = r"(\d+(?:\.\d+)?)"
ENTRIES = [
    Entry("02-bigram", "02_embeddings", "a48e2495", rf"trained bigram: val loss {N}", "validation loss, nats per character"),
    Entry("03-lookback", "03_attention", "3eb8a432", rf"accuracy on fresh sequences: {N}", "accuracy (copy t-3)", "higher"),
    Entry("05-one-batch", "05_gpt", "cb11143a", rf"step 150 {N}", "loss on one batch after 150 steps"),
    Entry("06-first-loop", "06_trainer", "efd44f12", rf"loss [\d.]+ -> {N}", "training loss after 40 steps"),
    Entry("06-one-epoch", "06_trainer", "68f885cf", rf"test loss {N}", "test loss after one epoch"),
    Entry("06-shakespeare", "06_trainer", "17a20c0e", rf"GPT validation loss {N}", "validation loss, nats per character"),
    Entry("07-shakespeare", "07_sampling", "6678e469", rf"validation loss {N}", "validation loss, nats per character"),
    Entry("08-addition", "08_addition", "e10f5f6d", r"(\d+) of 1000 held-out sums right", "held-out sums right, of 1000", "higher"),
    Entry("08-reversed", "08_addition", "9670b6d0", r"reversed: (\d+) of 1000 right", "held-out sums right, of 1000", "higher"),
    Entry("09-recipe", "09_shakespeare", "0c079c76", rf"final val loss {N}", "validation loss, nats per character"),
    Entry("09-ours", "09_shakespeare", "8c393fcc", rf"final val loss {N}", "validation loss, nats per character", timed=True),
    Entry("09-ladder-depth", "09_shakespeare", "c2dd4d86", rf"\+ depth \(4 blocks\)\s+[\d,]+\s+{N}", "validation loss, nats per character"),
    Entry("10-char", "10_bpe", "c9a015e3", rf"char:.*validation {N} bits", "validation bits per character"),
    Entry("10-bpe", "10_bpe", "c9a015e3", rf"bpe-512:.*validation {N} bits", "validation bits per character"),
    Entry("12-cache-model", "12_fast_generation", "c7d9e197", rf"-> {N} \(mean of the last 30\)", "training loss, last 30 steps"),
    Entry("13-fp32", "13_fast_training", "8a25668f", rf"'fp32': {N}", "training loss, last 30 steps"),
    Entry("13-bf16", "13_fast_training", "8a25668f", rf"'bf16': {N}", "training loss, last 30 steps"),
    Entry("14-ddp", "14_training", "357379ee", rf"final loss {N}", "training loss after 20 steps"),
    Entry("15-full", "15_lora", "b796030a", rf"full fine-tuning\s+{N}", "target validation loss, nats per character"),
    Entry("15-lora-r16", "15_lora", "b796030a", rf"LoRA r=16\s+{N}", "target validation loss, nats per character"),
    Entry("16-gpt2-recipe", "16_modern_gpt", "c16-race-run", rf"GPT-2 recipe\s+[\d,]+\s+\d+\s+[\d.]+\s+{N}", "validation loss, nats per character", timed=True),
    Entry("16-modern-recipe", "16_modern_gpt", "c16-race-run", rf"modern recipe\s+[\d,]+\s+\d+\s+[\d.]+\s+{N}", "validation loss, nats per character", timed=True),
    Entry("17-stand-in", "17_llama_checkpoints", "c17-load-smollm", rf"last training loss {N}", "training loss, nats per token", timed=True),
    Entry("18-base", "18_instruction_tuning", "c18-base", rf"last loss {N}", "training loss, nats per character"),
    Entry("18-full", "18_instruction_tuning", "c18-runs", rf"full, answer loss: .*?exact match {N}%", "exact match on held-out numbers, %", "higher"),
    Entry("18-lora-embeddings", "18_instruction_tuning", "c18-runs", rf"LoRA r=16 \+ embeddings: .*?exact match {N}%", "exact match on held-out numbers, %", "higher"),
    Entry("18-real-data", "18_instruction_tuning", "c18-real-tune", rf"-> {N} nats per token", "validation answer loss, nats per token"),
]


def cell_texts(cells) -> dict[str, str]:
    """Each code cell's printed text (streams and plain-text results), by cell id; progress bars dropped."""
    texts = {}
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        parts = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") in ("execute_result", "display_data"):
                parts.append(out.get("data", {}).get("text/plain", ""))
        text = "".join("".join(p) if isinstance(p, list) else p for p in parts)
        texts[cell.get("id")] = re.sub(r"[^\n]*\r", "", text)  # a tqdm bar rewrites its line with \r
    return texts


def read(entry: Entry, texts: dict[str, str]) -> float:
    """The entry's number in an executed chapter; a clear error when its cell or line is gone."""
    if entry.cell not in texts:
        raise LookupError(f"{entry.key}: book/{entry.notebook}.ipynb has no code cell with id {entry.cell!r}; "
                          "update ENTRIES in tools/expected_results.py")
    match = re.search(entry.pattern, texts[entry.cell])
    if match is None:
        raise LookupError(f"{entry.key}: cell {entry.cell} of book/{entry.notebook}.ipynb printed nothing that "
                          f"matches {entry.pattern!r}; it printed:\n{texts[entry.cell][-800:]}")
    return float(match.group(1))


def cached_cells(notebook: Path, cache_dir: Path):
    """The cells of the site build's execution of `notebook` (its current code) in jupyter-cache."""
    from jupyter_cache import get_cache

    from executed import matching_record  # tools/executed.py: the site build's own lookup

    cache = get_cache(str(cache_dir))
    record = matching_record(cache, notebook)
    if record is None:
        raise LookupError(f"{cache_dir} holds no execution of {notebook.name}'s current code; build the site "
                          "first (bash tools/book.sh --strict --no-open)")
    return cache.get_cache_bundle(record.pk).nb.cells


SHIFT_SEEDS = """\
import random as _random, numpy as _np, torch as _torch
def _shifted(seed_fn, by):
    def seed(value, *args, **kwargs):
        return seed_fn(value + by, *args, **kwargs)
    return seed
_random.seed = _shifted(_random.seed, {by})
_np.random.seed = _shifted(_np.random.seed, {by})
_torch.manual_seed = _shifted(_torch.manual_seed, {by})
_torch.cuda.manual_seed_all = _shifted(_torch.cuda.manual_seed_all, {by})
"""


def execute(notebook: Path, seed: int, timeout: int = 1800):
    """Run a chapter top to bottom (errors recorded, not fatal) with every seed shifted by `seed` * 1000."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(notebook), as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SHIFT_SEEDS.format(by=1000 * seed)))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(notebook.parent)}})
    client.execute()
    return nb.cells[1:]


def record(seed: int, chapters: list[str] | None, cache_dir: Path | None) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    notebooks = sorted({e.notebook for e in ENTRIES if not chapters or e.notebook[:2] in chapters})
    for name in notebooks:
        path = ROOT / "book" / f"{name}.ipynb"
        if not path.exists():
            print(f"{name}: no such chapter, skipped")
            continue
        t0 = time.time()
        try:
            cells = cached_cells(path, cache_dir) if cache_dir else execute(path, seed)
        except LookupError as e:
            print(f"{name}: {e}")
            continue
        failed = [c.get("id") for c in cells if "raises-exception" not in c.get("metadata", {}).get("tags", [])
                  and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
        texts = cell_texts(cells)
        values = {}
        for entry in (e for e in ENTRIES if e.notebook == name):
            try:
                values[entry.key] = read(entry, texts)
            except LookupError as e:
                print(f"  {e}".splitlines()[0])
                values[entry.key] = None
        run = dict(notebook=name, seed=seed, values=values, failed_cells=failed, device=device_name(),
                   torch=torch_version(), seconds=round(time.time() - t0, 1))
        (RUNS / f"{name}.seed{seed}.json").write_text(json.dumps(run, indent=1) + "\n")
        print(f"{name} seed {seed}: {values}" + (f"; cells that raised: {failed}" if failed else ""), flush=True)


def device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


def table() -> dict:
    """mingpt/expected_results.json from every recorded run."""
    runs = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]
    rows = {}
    for entry in ENTRIES:
        got = sorted((r["seed"], r["values"][entry.key]) for r in runs
                     if r["values"].get(entry.key) is not None)
        if not got:
            print(f"{entry.key}: no recorded value; left out of the table")
            continue
        values = [v for _, v in got]
        devices = sorted({r["device"] for r in runs if r["notebook"] == entry.notebook})
        rows[entry.key] = dict(asdict(entry), seeds=[s for s, _ in got], values=values, low=min(values),
                               high=max(values), devices=devices,
                               torch=sorted({r["torch"] for r in runs if r["notebook"] == entry.notebook}))
        for field in ("pattern", "notebook"):
            rows[entry.key].pop(field)
        rows[entry.key]["chapter"] = entry.notebook
    out = {"generated_by": "tools/expected_results.py table (do not edit by hand)", "entries": rows}
    TABLE.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{TABLE.relative_to(ROOT)}: {len(rows)} entries")
    return out


def check(cache_dir: Path) -> list[str]:
    """Problems: an entry the site build printed outside its normal band, or could not be read."""
    sys.path.insert(0, str(ROOT))
    from mingpt.diagnose import normal_band

    rows = json.loads(TABLE.read_text())["entries"]
    problems, texts = [], {}
    for entry in ENTRIES:
        if entry.timed:
            continue  # a fixed time's result depends on the machine's speed, which CI does not control
        if entry.key not in rows:
            problems.append(f"{entry.key}: not in {TABLE.name}; run this tool's record and table")
            continue
        if entry.notebook not in texts:
            try:
                texts[entry.notebook] = cell_texts(cached_cells(ROOT / "book" / f"{entry.notebook}.ipynb", cache_dir))
            except LookupError as e:
                texts[entry.notebook] = None  # a chapter missing from the cache: said once, not per entry
                problems.append(str(e))
        if texts[entry.notebook] is None:
            continue
        try:
            value = read(entry, texts[entry.notebook])
        except LookupError as e:
            problems.append(str(e))
            continue
        low, high = normal_band(rows[entry.key])
        if not low <= value <= high:
            problems.append(f"{entry.key}: book/{entry.notebook}.ipynb printed {value:g}, outside the table's "
                            f"normal band [{low:.4g}, {high:.4g}] (seeds {rows[entry.key]['values']}); if the "
                            "chapter changed on purpose, record and regenerate the table")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--seed", type=int, required=True)
    rec.add_argument("--chapters", nargs="*", help="chapter numbers, e.g. 06 07 (default: every chapter in ENTRIES)")
    rec.add_argument("--cache", type=Path, help="read the execution from this jupyter-cache (seed 0 only)")
    sub.add_parser("table")
    chk = sub.add_parser("check")
    chk.add_argument("--cache", type=Path, default=ROOT / "_build" / ".jupyter_cache")
    args = parser.parse_args(argv)
    if args.command == "record":
        if args.cache and args.seed != 0:
            parser.error("--cache holds the chapters as they are, which is seed 0")
        record(args.seed, args.chapters, args.cache)
    elif args.command == "table":
        table()
    else:
        problems = check(args.cache)
        print("\n".join(problems) or f"every entry of {TABLE.name} as the chapters printed it: normal")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
