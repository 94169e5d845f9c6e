"""scripts/notebooks.py: the canonical form of an executed chapter."""

import sys
from pathlib import Path

import nbformat
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import notebooks  # noqa: E402

streams = st.lists(
    st.tuples(st.sampled_from(["stdout", "stderr", "result"]), st.text("ab\n", max_size=6)),
    max_size=8,
)


def as_outputs(parts: list[tuple[str, str]]) -> list[dict]:
    return [
        {"output_type": "execute_result", "data": {"text/plain": text}, "metadata": {},
         "execution_count": 1}
        if name == "result"
        else {"output_type": "stream", "name": name, "text": text}
        for name, text in parts
    ]  # fmt: skip


def printed(outputs: list[dict]) -> list[tuple[str, str]]:
    """(stream name or "result", text) of each output."""
    return [
        (o.get("name", "result"), o["text"] if "text" in o else o["data"]["text/plain"])
        for o in outputs
    ]


@given(streams)
def test_coalesced_streams_keep_the_text_and_order_of_what_was_printed(parts):
    merged = printed(notebooks.coalesce_streams(as_outputs(parts)))
    assert "".join(text for _, text in merged) == "".join(text for _, text in parts)
    names = [name for name, _ in merged]
    assert all(a != b or a == "result" for a, b in zip(names, names[1:], strict=False))


def test_a_split_print_is_stored_as_one_output():
    cell = nbformat.v4.new_code_cell("print(1); print(2)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="2\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="w\n")]  # fmt: skip
    nb = nbformat.v4.new_notebook(cells=[cell])
    stored = nbformat.reads(notebooks.canonical(nb), as_version=4).cells[0].outputs
    assert [(o.name, o.text) for o in stored] == [("stdout", "1\n2\n"), ("stderr", "w\n")]
