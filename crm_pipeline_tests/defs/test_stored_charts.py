"""A chart is drawn again only when what it shows changed; otherwise the stored PNG is shown."""

from __future__ import annotations

from crm_pipeline.defs.stored_charts import stored_png


def test_a_chart_is_drawn_once_per_inputs_and_read_back_otherwise(tmp_path):
    drawn = []

    def draw(png: bytes):
        return lambda: drawn.append(png) or png

    folder = tmp_path / "charts" / "2025-06-30"
    assert stored_png(folder, "sizes.png", "a,b\n1,2", draw(b"first")) == b"first"
    assert stored_png(folder, "sizes.png", "a,b\n1,2", draw(b"second")) == b"first"   # same data: not drawn
    assert stored_png(folder, "sizes.png", "a,b\n1,3", draw(b"third")) == b"third"    # new data: drawn again
    assert drawn == [b"first", b"third"]
    assert (folder / "sizes.png").read_bytes() == b"third"
    (folder / "sizes.png.inputs").unlink()                                               # a run stopped mid-write
    assert stored_png(folder, "sizes.png", "a,b\n1,3", draw(b"fourth")) == b"fourth"
