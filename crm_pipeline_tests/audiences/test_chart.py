"""The audience sizes chart is SVG text: the largest audiences of the last day, one line each over the days."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd

from crm_pipeline.audiences.chart import sizes_over_time_svg

AS_OF = dt.date(2025, 6, 30)


def test_the_chart_shows_the_largest_audiences_of_the_last_day_over_every_day():
    days = [AS_OF - dt.timedelta(days=n) for n in (3, 1, 0)]   # the day between has no sizes
    frame = pd.DataFrame([(day, f"a{i}&b", 1000 * i + k) for k, day in enumerate(days) for i in range(10)]
                         + [(days[0], "gone", 99_999)], columns=["as_of", "audience", "size"])
    svg = sizes_over_time_svg(frame, AS_OF).decode()
    assert f">Audience sizes, last 90 days to {AS_OF}</text>" in svg
    legend = re.findall(r">(\S+) \(([\d,]+)\)</text>", svg)
    assert legend == [(f"a{i}&amp;b", f"{1000 * i + 2:,}") for i in range(9, 1, -1)]   # 8 largest on the last day
    assert "gone" not in svg and ">a1&amp;b" not in svg
    assert [len(p.split()) for p in re.findall(r'<polyline points="([^"]*)"', svg)] == [3] * 8   # gap joined over
    assert svg.count("<circle ") == 3 * 8                       # few days: every point marked
    assert f">{AS_OF - dt.timedelta(days=2)}</text>" in svg   # the x axis counts days, not days with sizes
    assert f">{AS_OF}</text>" in svg and ">contacts</text>" in svg and ">10,000</text>" in svg
    assert "no sizes" in sizes_over_time_svg(frame.iloc[:0], AS_OF).decode()
