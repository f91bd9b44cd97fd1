"""Check the chapters from the site build's execution instead of running them a second time.

CI executes every chapter once, in the site build (`tools/book.sh --strict`, cache mode: each
executed notebook lands in jupyter-cache, `_build/.jupyter_cache`). With
`MINGPT_NBVAL_FROM_CACHE=<that folder>`, `tools/test.sh` then checks each chapter the way
`nbval --nbval-lax` does, cell by cell, but on the outputs of that execution instead of a new
kernel run:

- a cell whose execution raised fails, unless it is tagged `raises-exception`;
- a cell tagged `nbval-check-output` must print what the notebook stores (nbval's comparison);
- a chapter with no execution in the cache whose code equals the chapter's fails all its cells
  (jupyter-cache matches a notebook by the hash of its code cells, as the site build does), so a
  chapter can never pass unexecuted.

Without the variable, nothing changes: nbval runs every chapter in a kernel.
"""
from __future__ import annotations

import copy
import functools
import os

import pytest

CACHE_ENV = "MINGPT_NBVAL_FROM_CACHE"


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path, parent):
    outcome = yield
    cache_dir = os.environ.get(CACHE_ENV)
    if not cache_dir or file_path.suffix != ".ipynb":
        return
    from nbval.plugin import IPyNbFile

    collected = outcome.get_result()
    if any(isinstance(c, IPyNbFile) for c in collected):
        outcome.force_result([
            _cached_classes()[0].from_parent(parent, path=file_path) if isinstance(c, IPyNbFile) else c
            for c in collected
        ])


@functools.cache
def _cached_classes():
    """Subclasses of nbval's collector and item, made on first use (nbval is imported lazily)."""
    import nbformat
    from nbval.plugin import IPyNbCell, IPyNbFile, coalesce_streams

    class CachedNbFile(IPyNbFile):
        """A chapter whose cells are checked against the site build's cached execution."""

        def collect(self):
            for item in super().collect():
                yield CachedNbCell.from_parent(self, name=item.name, cell_num=item.cell_num,
                                               cell=item.cell, options=item.options)

        def setup(self):
            from jupyter_cache import get_cache

            cache_dir = os.environ[CACHE_ENV]
            nb = nbformat.read(str(self.fspath), as_version=4)
            if "kernelspec" in nb.metadata:  # the site build maps every kernel name to python3
                nb.metadata.kernelspec["name"] = "python3"
            if not os.path.isdir(cache_dir):
                raise RuntimeError(f"{CACHE_ENV}={cache_dir}: no such folder; build the site first "
                                   "(bash tools/book.sh --strict --no-open)")
            cache = get_cache(cache_dir)
            try:
                record = cache.match_cache_notebook(nb)
            except KeyError:
                raise RuntimeError(
                    f"{self.fspath.basename}: the cache {cache_dir} holds no execution of this "
                    "notebook's current code: the site build did not execute it, or its execution "
                    "failed (see the build's log and _build/html/reports/)") from None
            self.executed = cache.get_cache_bundle(record.pk).nb.cells
            self.setup_sanitize_files()

    class CachedNbCell(IPyNbCell):
        """One code cell: its outputs come from the cached execution, then nbval's checks run."""

        def runtest(self):
            if self.options["skip"]:
                pytest.skip()
            executed = self.parent.executed[self.cell_num]
            if executed.source != self.cell.source:
                self.raise_cell_error("the cached execution's cell differs from the notebook's")
            outs = [copy.deepcopy(o) for o in executed.get("outputs", [])]
            self.test_outputs = outs
            errors = [o for o in outs if o.output_type == "error"]
            if errors and not self.options["check_exception"]:
                self.raise_cell_error("Cell execution caused an exception",
                                      "\n" + "\n".join(errors[0].get("traceback", [])))
            outs = coalesce_streams(outs)
            unrun = self.cell.execution_count is None
            if unrun and self.cell.outputs:
                self.raise_cell_error("Unrun reference cell has outputs")
            if self.options["check"] and not unrun:
                if not self.compare_outputs(outs, coalesce_streams(self.cell.outputs)):
                    self.raise_cell_error("Cell outputs differ", "\n".join(self.comparison_traceback))

    return CachedNbFile, CachedNbCell
