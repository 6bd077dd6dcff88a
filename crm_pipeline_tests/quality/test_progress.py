"""The quality stage's three parts report files in turn through one step: each gets a bar of its own."""

from __future__ import annotations

import io

from crm_pipeline.progress import ProgressPrinter


def test_each_part_of_a_step_that_counts_its_files_again_gets_a_bar_of_its_own():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=True)
    printer.files("stage_entities", 1, 1, 10)  # typing the one new file of an incremental run
    printer.files("stage_entities", 2, 3, 40)  # publishing counts the files of the entities it has published
    printer.files("stage_entities", 3, 3, 50)
    printer.files("stage_entities", 1, 3, 10)  # validation starts from the first file again
    printer.close()
    shown = out.getvalue()
    assert "1/1" in shown and "2/3" in shown and "1/3" in shown
    assert "2/1" not in shown and "3/1" not in shown  # not the next part drawn on the first part's bar
    assert shown.count("0/3") == 2  # publishing and validation each start a bar of their own
