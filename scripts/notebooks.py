"""Re-execute, clean and verify the book's notebooks (book/*.ipynb), which are committed executed.

    scripts/notebooks.py execute [NB ...]  # make notebooks: run each top to bottom, then clean
    scripts/notebooks.py clean   [NB ...]  # make clean-notebooks: canonical form, no execution
    scripts/notebooks.py verify  [NB ...]  # make check-notebooks: exit 1 listing the offenders

With no NB, every book/*.ipynb. The canonical form is what `execute` writes:
* outputs, execution counts and widget state kept; everything else nbstripout strips by default
  removed, i.e. `nbstripout --keep-output --keep-count --keep-metadata-keys metadata.widgets`
  (applied through nbstripout's API with its default key list, so git config cannot change it);
* kernelspec python3; no nbclient/papermill timing metadata; no Python patch version;
* cell ids "0", "1", ... (nbstripout) and widget model ids numbered in a fixed traversal order,
  so re-executing an unchanged notebook reproduces the file byte for byte.
`verify` also requires every code cell to have run, in order, in one fresh kernel (nbval compares
only cells with an execution count), no error outputs, widget state for every widget view, one
`parameters` cell whose parameters are typed and commented (`epochs: int = 2  # ...`), and a
check(...) or assert in or shortly after every cell tagged nbval-ignore-output (CONTRIBUTING.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbstripout import strip_output
from papermill.inspection import inspect_notebook

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

#: Kernel settings that confine PyTorch, oneDNN and MKL to one instruction set.
ISA_ENV = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "native": {},
}
#: The kernel's environment for reference outputs; `make nbval` uses the same (NB_ENV).
#: No GPU: references made on a GPU would not match CI's CPU run. AVX2 kernels, which every
#: x86-64 reader's CPU of the last decade runs, so AVX-512/AMX machines compute what AVX2 ones do.
CANONICAL_ENV = {"OMP_NUM_THREADS": "2", "PYTHONHASHSEED": "0", "CUDA_VISIBLE_DEVICES": "",
                 **ISA_ENV["avx2"]}
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
CELL_TIMEOUT_S = 600
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# nbstripout's default extra keys less metadata.widgets (its --keep-metadata-keys), plus the
# run metadata papermill and the kernel add.
STRIP_KEYS = [
    "metadata.signature",
    "cell.metadata.collapsed",
    "cell.metadata.ExecuteTime",
    "cell.metadata.execution",
    "cell.metadata.heading_collapsed",
    "cell.metadata.hidden",
    "cell.metadata.scrolled",
    "metadata.papermill",
    "cell.metadata.papermill",
    "metadata.language_info.version",
]
#: An output nbval ignores must be checked in its cell or one of this many code cells after it.
CHECK_WITHIN = 3
MODEL_ID = re.compile(r"[0-9a-f]{32}")


def renumber_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace the random widget model ids by ids numbered in a traversal order fixed by content.

    Breadth first from the views in the outputs (cell order), then references inside each model's
    state (sorted keys); models nothing refers to come last, ordered by their state.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    if not state:
        return nb
    queue = [
        output["data"][WIDGET_VIEW]["model_id"]
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if WIDGET_VIEW in output.get("data", {})
    ]
    order: list[str] = []
    while queue:
        model_id = queue.pop(0)
        if model_id in state and model_id not in order:
            order.append(model_id)
            queue += MODEL_ID.findall(json.dumps(state[model_id], sort_keys=True))
    masked = {m: MODEL_ID.sub("", json.dumps(state[m], sort_keys=True)) for m in state}
    order += sorted((m for m in state if m not in order), key=masked.__getitem__)
    new_ids = {old: f"{n:032x}" for n, old in enumerate(order, start=1)}
    text = MODEL_ID.sub(lambda m: new_ids.get(m.group(), m.group()), json.dumps(nb))
    return nbformat.from_dict(json.loads(text))


def coalesce_streams(outputs: list[dict]) -> list[dict]:
    """``outputs`` with each run of consecutive stream outputs of one name (stdout, stderr) made
    one: how a kernel splits what a cell prints depends on when it flushes, not on the cell."""
    merged: list[dict] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and last is not None
                and last.get("output_type") == "stream" and last["name"] == output["name"]):
            last["text"] = "".join(last["text"]) + "".join(output["text"])
        else:
            merged.append(output)
    return merged


def canonical(nb: nbformat.NotebookNode) -> str:
    """The notebook's canonical file content."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = coalesce_streams(cell.outputs)
    if nb.nbformat_minor < 5:
        nb.nbformat_minor = 5
        for i, cell in enumerate(nb.cells):
            cell["id"] = str(i)  # what nbstripout numbers them anyway
    strip_output(nb, keep_output=True, keep_count=True, keep_id=False, extra_keys=STRIP_KEYS)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb = renumber_widgets(nb)
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def execute(paths: list[Path]) -> int:
    os.environ.update(CANONICAL_ENV)  # the kernel inherits this process's environment
    print("execute: " + " ".join(f"{k}={v!r}" for k, v in CANONICAL_ENV.items()), flush=True)
    failed = []
    for path in paths:
        start = time.perf_counter()
        nb = read(path)
        client = NotebookClient(
            nb,
            timeout=CELL_TIMEOUT_S,
            kernel_name=KERNELSPEC["name"],
            resources={"metadata": {"path": str(path.parent)}},  # cwd = the notebook's folder
            store_widget_state=True,
            record_timing=False,
            allow_errors=False,
        )
        try:
            client.execute()
        except CellExecutionError as err:
            failed.append(path)
            print(f"execute: {rel(path)} FAILED, left unchanged:\n{err}", file=sys.stderr)
            continue
        path.write_text(canonical(nb), encoding="utf-8")
        print(f"execute: {rel(path)} ({time.perf_counter() - start:.1f} s)", flush=True)
    if failed:
        print(f"execute: {len(failed)} failed: {' '.join(map(rel, failed))}", file=sys.stderr)
    return 1 if failed else 0


def clean(paths: list[Path]) -> int:
    for path in paths:
        text = canonical(read(path))
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
            print(f"clean: rewrote {rel(path)}")
    return 0


def problems(path: Path) -> list[str]:
    """Why `path` is not a canonical, fully executed chapter (empty if it is)."""
    found = []
    nb = read(path)
    if canonical(nb) != path.read_text(encoding="utf-8"):
        found.append("not in canonical form (`make clean-notebooks` fixes it)")
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    unrun = [i for i, c in code if c.execution_count is None]
    if unrun:
        found.append(f"cells {unrun} (0-based) have no execution count: nbval skips them")
    counts = [c.execution_count for _, c in code]
    if not unrun and counts != list(range(1, len(code) + 1)):
        found.append(f"execution counts {counts} are not 1..{len(code)}: not one top-to-bottom run")
    errors = [i for i, c in code if any(o.output_type == "error" for o in c.get("outputs", []))]
    if errors:
        found.append(f"cells {errors} (0-based) stored an error")
    views = any(WIDGET_VIEW in o.get("data", {}) for _, c in code for o in c.get("outputs", []))
    if views and not nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state"):
        found.append("widget views without stored widget state (they would render blank)")
    unchecked = unchecked_ignored_cells(code)
    if unchecked:
        found.append(f"cells {unchecked} (0-based) are tagged nbval-ignore-output, hold no widget, "
                     "and neither they nor the next code cell state a check(...) or assert")
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        found.append(f"{len(tagged)} cells tagged `parameters`; a chapter needs exactly one")
    else:
        params = inspect_notebook(str(path))  # what `papermill --help-notebook` shows
        if not params:
            found.append("the `parameters` cell defines no parameters")
        for name, p in params.items():
            if p["inferred_type_name"] == "None" or not p["help"]:
                found.append(f"parameter `{name}` needs a type and a comment: "
                             f"`{name}: <type> = <default>  # <what it does>`")
    if found:
        found.append("`make notebooks` re-executes and cleans every chapter")
    return found


def unchecked_ignored_cells(code: list[tuple[int, nbformat.NotebookNode]]) -> list[int]:
    """Cells whose outputs nbval ignores and nothing checks: an ignored output (a training log, a
    table of a trained model's numbers) must be followed closely by the claims made about it,
    stated with ``check(...)`` or ``assert`` in the cell itself or one of the next
    :data:`CHECK_WITHIN` code cells. Widget cells, whose output needs a live kernel, are exempt."""
    def checks(cell: nbformat.NotebookNode) -> bool:
        return "check(" in cell.source or "assert " in cell.source

    unchecked = []
    for k, (i, cell) in enumerate(code):
        if "nbval-ignore-output" not in cell.metadata.get("tags", []):
            continue
        if any(WIDGET_VIEW in o.get("data", {}) for o in cell.get("outputs", [])):
            continue
        if not any(checks(c) for _, c in code[k:k + 1 + CHECK_WITHIN]):
            unchecked.append(i)
    return unchecked


def verify(paths: list[Path]) -> int:
    bad = {path: found for path in paths if (found := problems(path))}
    for path, found in bad.items():
        print(f"{rel(path)}:", *(f"  - {item}" for item in found), sep="\n", file=sys.stderr)
    if bad:
        print(f"verify: {len(bad)} of {len(paths)} notebooks not canonical: "
              f"{' '.join(map(rel, bad))}", file=sys.stderr)
        return 1
    print(f"verify: {len(paths)} notebooks in canonical form, fully executed")
    return 0


def rel(path: Path) -> str:
    path = path.resolve()
    return path.relative_to(ROOT).as_posix() if ROOT in path.parents else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["execute", "clean", "verify"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: book/*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(BOOK.glob("*.ipynb"))
    if not paths:
        print(f"{args.command}: no notebooks in {rel(BOOK)}", file=sys.stderr)
        return 1
    return {"execute": execute, "clean": clean, "verify": verify}[args.command](paths)


if __name__ == "__main__":
    sys.exit(main())
