"""The status page's SVG charts: right marks, honest scale, safe to inline, readable without sight."""

import xml.etree.ElementTree as ET

import pytest

from dispatch.http.charts import bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"
HOURS = [f"{h:02d}:00" for h in range(24)]


def parse(svg: str) -> ET.Element:
    # Well-formed XML is the first guarantee of safe inlining: a label cannot open an element.
    return ET.fromstring(svg)


def bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(f"{SVG}rect[@class='sc-chart-bar']")


def test_one_bar_per_hour():
    root = parse(
        bar_chart([(h, i % 4) for i, h in enumerate(HOURS)], title="Rescues per hour", unit="rescues")
    )
    assert len(bars(root)) == 24
    assert [b.find(f"{SVG}title").text for b in bars(root)][14] == "14:00: 2 rescues"
    assert root.get("width") == "300" and root.get("height") == "80"


def test_bars_scale_from_zero_to_the_highest_value():
    root = parse(bar_chart([("a", 10), ("b", 5), ("c", 0), ("d", 2.5)], title="t", unit="u"))
    heights = [float(b.get("height")) for b in bars(root)]
    full = heights[0]
    assert full > 40  # most of the 80 px height, the rest is labels
    assert heights[1] == pytest.approx(full / 2, abs=0.1)
    assert heights[2] == 0
    assert heights[3] == pytest.approx(full / 4, abs=0.1)
    bottoms = {round(float(b.get("y")) + float(b.get("height")), 1) for b in bars(root)}
    assert len(bottoms) == 1  # every bar stands on the same baseline
    xs = [float(b.get("x")) for b in bars(root)]
    assert xs == sorted(xs) and xs[-1] + float(bars(root)[-1].get("width")) <= 300


def test_bars_fit_a_custom_size():
    root = parse(bar_chart([(h, 3) for h in HOURS], title="t", unit="u", width=480, height=120))
    assert root.get("viewBox") == "0 0 480 120"
    last = bars(root)[-1]
    assert float(last.get("x")) + float(last.get("width")) <= 480


def test_all_zero_bars_do_not_divide_by_zero():
    root = parse(bar_chart([(h, 0) for h in HOURS], title="Rescues per hour", unit="rescues"))
    assert {b.get("height") for b in bars(root)} == {"0"}


def test_labels_title_and_unit_are_escaped():
    evil = '<script>alert("x")</script>'
    for svg in (
        bar_chart([(evil, 1), ("b", 2)], title=evil, unit=evil),
        line_chart([(evil, 1), ("b", None), ("c", 3)], title=evil, unit=evil),
    ):
        assert "<script" not in svg
        assert "&lt;script&gt;" in svg
        root = parse(svg)
        assert root.find(f".//{SVG}script") is None
        assert evil in root.get("aria-label")  # the text survives, as text
        assert not [el for el in root.iter() if any(k.startswith("on") for k in el.attrib)]


def test_quotes_in_labels_cannot_break_out_of_an_attribute():
    root = parse(bar_chart([('x" onload="alert(1)', 1)], title='t" onload="alert(1)', unit="u"))
    assert root.get("onload") is None
    assert 'onload="alert(1)' in root.get("aria-label")


@pytest.mark.parametrize("chart", [bar_chart, line_chart])
def test_empty_data_is_a_valid_chart_saying_no_data(chart):
    root = parse(chart([], title="Rescues per hour", unit="rescues"))
    assert root.get("aria-label") == "Rescues per hour: no data"
    assert not bars(root) and root.find(f"{SVG}path") is None
    assert "no data" in "".join(root.itertext())


def test_all_none_line_is_no_data():
    root = parse(line_chart([(h, None) for h in HOURS], title="Median wait", unit="min"))
    assert root.find(f"{SVG}path") is None and root.find(f"{SVG}circle") is None
    assert root.get("aria-label") == "Median wait: no data"
    assert "00:00" in "".join(root.itertext())  # the time axis still shows the day


def test_gaps_split_the_line_and_a_lone_point_is_a_dot():
    points = [
        ("08:00", 4),
        ("09:00", 6),
        ("10:00", None),
        ("11:00", 5),
        ("12:00", None),
        ("13:00", 2),
        ("14:00", 3),
    ]
    root = parse(line_chart(points, title="Median wait", unit="min"))
    paths = root.findall(f"{SVG}path")
    assert len(paths) == 2  # 08-09 and 13-14; 11:00 stands alone
    assert all(p.get("d").count("M") == 1 for p in paths)
    assert len(root.findall(f"{SVG}circle")) == 5
    assert "2 without data" in root.get("aria-label")


def test_line_scales_from_zero():
    root = parse(line_chart([("a", 8), ("b", 4), ("c", 0)], title="t", unit="min"))
    ys = [float(c.get("cy")) for c in root.findall(f"{SVG}circle")]
    baseline = float(root.find(f"{SVG}line").get("y1"))
    assert ys[2] == baseline
    assert baseline - ys[1] == pytest.approx((baseline - ys[0]) / 2, abs=0.1)


def test_nan_and_negative_values():
    root = parse(line_chart([("a", float("nan")), ("b", 2), ("c", -1)], title="t", unit="min"))
    assert len(root.findall(f"{SVG}circle")) == 2  # NaN is a gap
    assert float(root.findall(f"{SVG}circle")[1].get("cy")) == float(root.find(f"{SVG}line").get("y1"))
    assert len(bars(parse(bar_chart([("a", None), ("b", 1)], title="t", unit="u")))) == 1


@pytest.mark.parametrize("chart", [bar_chart, line_chart])
def test_accessible_name_says_what_the_chart_shows(chart):
    svg = chart([("09:00", 2), ("10:00", 7.25), ("11:00", 3)], title="Median wait", unit="min")
    root = parse(svg)
    assert root.get("role") == "img"
    label = root.get("aria-label")
    assert label.startswith("Median wait: 3 ")
    assert "highest 7.2 min at 10:00" in label and "latest 3 min at 11:00" in label
    assert root[0].tag == f"{SVG}title" and root[0].text == label  # the first child names the image


def test_colours_come_from_css_variables_with_fallbacks():
    svg = bar_chart([("a", 1)], title="t", unit="u") + line_chart([("a", 1), ("b", 2)], title="t", unit="u")
    assert 'fill="var(--chart-bar, var(--accent, #0969da))"' in svg
    assert 'stroke="var(--chart-line, var(--accent, #0969da))"' in svg
    assert "var(--chart-text, var(--muted, #57606a))" in svg
    assert "style=" not in svg and "<style" not in svg and " id=" not in svg  # CSP-safe, no id clashes


def test_too_small_is_refused():
    with pytest.raises(ValueError):
        bar_chart([("a", 1)], title="t", unit="u", width=10, height=10)
