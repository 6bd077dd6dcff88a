"""A chart is drawn again only when what it shows changed; otherwise the stored file is shown."""

from __future__ import annotations

from crm_pipeline.defs.stored_charts import stored_chart


def test_a_chart_is_drawn_once_per_inputs_and_read_back_otherwise(tmp_path):
    drawn = []

    def draw(png: bytes):
        return lambda: drawn.append(png) or png

    folder = tmp_path / "charts" / "2025-06-30"
    assert stored_chart(folder, "sizes.svg", "a,b\n1,2", draw(b"first")) == b"first"
    assert stored_chart(folder, "sizes.svg", "a,b\n1,2", draw(b"second")) == b"first"   # same data: not drawn
    assert stored_chart(folder, "sizes.svg", "a,b\n1,3", draw(b"third")) == b"third"    # new data: drawn again
    assert drawn == [b"first", b"third"]
    assert (folder / "sizes.svg").read_bytes() == b"third"
    (folder / "sizes.svg.inputs").unlink()                                               # a run stopped mid-write
    assert stored_chart(folder, "sizes.svg", "a,b\n1,3", draw(b"fourth")) == b"fourth"
