"""The HTML report of `lab check`: what it says, that it escapes what it shows, its charts, and how a browser draws it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_report import sample_result  # saved results of real runs, read back

from grader import html_report
from grader.calibration import Calibration
from grader.html_report import (
    BAR_AREA,
    BAR_LEFT,
    CHART_WIDTH,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    NOT_MEASURED,
    PassLine,
    figure_chart,
    render_html,
    write_html,
)
from grader.results import CheckResult, RunResult, StageProblem

CALIBRATION = Calibration(
    lab="slow-queries", version="1.0.0-abc", provider="local", machine="AMD EPYC, 2 cores",
    measured_at="2026-12-01T10:00:00Z", seed=1,
    starter={"queries-constant": {"statements, page of 25": 76, "p95 ms": 840.0, "requests/s": 4.0}},
    reference={"queries-constant": {"statements, page of 25": 2, "p95 ms": 42.5}},
)
HINT = "Which serializer field asks for the author of each book?"
PASSING = CheckResult(id="books-content", title="The catalogue lists books newest first", status="pass",
                      message="Book pages answer exactly what the database holds", duration=3.54)
FAILING = CheckResult(
    id="queries-constant", title="A list page runs the same number of SQL statements for 5 items as for 25",
    status="fail", message="a page of 25 books ran 38 SQL statements and a page of 5 ran 8",
    evidence={"review body": "<script>alert(1)</script>", "page of 25": {"statements": 38}},
    hint=HINT, duration=2.17, weight=3,
    figures={"statements, page of 25": 38, "requests/s": 12.5},  # no p95 of yours: "not measured"
)
ERRORED = CheckResult(
    id="filter-uses-index", title="The reviewer filter is answered from an index", status="error",
    message="the check itself failed: KeyError 'plan'", hint="not shown for an error", weight=2,
    evidence={"traceback": 'Traceback (most recent call last):\n  File "check.py", line 3\nKeyError: \'plan\''},
)
SKIPPED = CheckResult(id="under-load", title="Under load", status="skip", message="skipped: the service did not start",
                      required=False)


def run_result(checks: list[CheckResult], **changes) -> RunResult:
    fields = dict(lab="slow-queries", lab_version="1.0.0", provider="local", seed=520297273,
                  started_at="2026-12-02T05:56:14+00:00", stages={"snapshot": 0.01, "checks": 21.0}, checks=checks,
                  calibration=CALIBRATION)
    return RunResult(**{**fields, **changes})


def mixed_result() -> RunResult:
    return run_result([PASSING, FAILING, ERRORED, SKIPPED])


def stage_failure_result() -> RunResult:
    skipped = [CheckResult(id=check.id, title=check.title, status="skip", message="the service did not start")
               for check in (PASSING, FAILING, ERRORED)]
    problem = StageProblem(stage="migrate", message="`python manage.py migrate` exited with status 1",
                           log_tail='  File "catalog/models.py", line 7\n    title = models.CharField(max_length=<200)\n'
                                    "SyntaxError: invalid syntax",
                           todo="Run `python manage.py migrate` yourself and fix the first error it shows.")
    return run_result(skipped, stage_failure=problem, calibration=None)


class ChartReader(HTMLParser):
    """The bars of every chart in a page: check id -> figure name -> series -> bar width (None: no bar)."""

    def __init__(self):
        super().__init__()
        self.charts: dict[str, dict[str, dict[str, float | None]]] = {}
        self._chart: dict[str, dict[str, float | None]] | None = None
        self._figure: dict[str, float | None] | None = None
        self._in_figure_name = False
        self.missing_texts: list[str] = []
        self._in_missing = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "svg" and "chart" in classes:
            check_id = attributes["aria-labelledby"].split()[0].removeprefix("chart-").removesuffix("-title")
            self._chart = self.charts.setdefault(check_id, {})
        elif tag == "text" and "figure-name" in classes:
            self._in_figure_name = True
        elif tag == "text" and "missing" in classes:
            self._in_missing = True
        elif tag == "rect" and "data-series" in attributes and self._figure is not None:
            self._figure[attributes["data-series"]] = float(attributes["width"])

    def handle_endtag(self, tag):
        if tag == "svg":
            self._chart = self._figure = None
        if tag == "text":
            self._in_figure_name = self._in_missing = False

    def handle_data(self, data):
        if self._in_figure_name and self._chart is not None:
            self._figure = self._chart.setdefault(data, {})
        if self._in_missing:
            self.missing_texts.append(data)


def read_charts(page: str) -> ChartReader:
    reader = ChartReader()
    reader.feed(page)
    return reader


# The page itself


def test_the_header_names_the_run_its_score_and_verdict():
    page = render_html(mixed_result())

    assert "The slow catalogue: N+1 queries, missing indexes, unbounded pages" in page, "the lab's title"
    for text in ("slow-queries", "1.0.0", "local", "520297273", "2026-12-02T05:56:14+00:00"):
        assert text in page
    assert '<strong>1/7</strong> <span class="score-unit">points</span>' in page
    assert "1 of 4 checks pass" in page, "points and checks are told apart"
    assert "<title>slow-queries 1.0.0: 2 required checks not passing (1/7 points · 1 of 4 checks pass)</title>" in page
    assert "2 required checks not passing" in page, "the skipped check is optional"
    assert "all required checks pass" in render_html(run_result([PASSING]))
    assert "1 required check not passing" in render_html(run_result([PASSING, FAILING]))


def test_each_check_shows_its_verdict_message_and_facts():
    page = render_html(mixed_result())

    for check in (FAILING, ERRORED, SKIPPED):
        assert f'id="check-{check.id}"' in page
        assert check.message in page.replace("&#39;", "'")
    assert 'id="check-books-content"' in page
    assert PASSING.message not in page, "a passing check's message is its docstring, its title again"
    for status, label in (("pass", "PASS"), ("fail", "FAIL"), ("error", "ERROR"), ("skip", "SKIP")):
        assert f'<span class="badge badge-{status}">{label}</span>' in page, "a status is a word, not a colour alone"
    assert "2.2 s · 3 points · required" in page
    assert "0.0 s · 1 point · optional" in page
    assert '<th scope="col" class="num">points</th>' in page
    assert HINT in page, "a failing check's hint"
    assert "not shown for an error" not in page, "hints are for fail and inconclusive only"


def test_an_inconclusive_check_gets_its_own_badge_and_its_hint():
    check = CheckResult(id="under-load", title="Under load", status="inconclusive",
                        message="too close to call after 3 rounds", hint="Run it again on a quieter machine.")

    page = render_html(run_result([check]))

    assert '<span class="badge badge-inconclusive">INCONCLUSIVE</span>' in page
    assert "Run it again on a quieter machine." in page


def test_evidence_is_escaped_never_markup():
    page = render_html(mixed_result())

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "<dt>review body</dt>" in page
    assert '{&#34;statements&#34;: 38}' in page, "a short structure on one line, as JSON"


def test_backticked_words_are_set_as_code_and_the_rest_stays_escaped():
    assert html_report.code_spans("run `lab run` to see <b>why</b>, then `<i>`") == (
        "run <code>lab run</code> to see &lt;b&gt;why&lt;/b&gt;, then <code>&lt;i&gt;</code>")
    assert "<code>lab calibrate</code>" in render_html(run_result([FAILING], calibration=None))


def test_a_traceback_starts_collapsed():
    page = render_html(mixed_result())

    collapsed = re.search(r"<details>\s*<summary>[^<]*traceback[^<]*</summary>\s*<pre>(.*?)</pre>\s*</details>",
                          page, re.DOTALL)
    assert collapsed, "the traceback sits in a closed <details>"
    assert "KeyError: &#39;plan&#39;" in collapsed.group(1)


def test_long_structured_evidence_is_indented_and_collapsed():
    plans = [{"query": f"SELECT {number}", "plan": ["Seq Scan on catalog_review"]} for number in range(5)]
    check = CheckResult(id="filter-uses-index", title="index", status="fail", message="a Seq Scan",
                        evidence={"plans": plans})

    page = render_html(run_result([check]))

    assert re.search(r"<details><summary>show plans \(\d+ lines\)</summary><pre>\[\n  \{", page)


def test_a_stage_failure_shows_the_stage_its_log_and_what_to_try():
    page = render_html(stage_failure_result())

    assert "The migrate stage failed" in page
    assert "<code>python manage.py migrate</code> exited with status 1" in page
    log = re.search(r'<pre class="log">(.*?)</pre>', page, re.DOTALL)
    assert log and "max_length=&lt;200)\nSyntaxError: invalid syntax" in log.group(1)
    assert "<strong>What to try:</strong> Run <code>python manage.py migrate</code> yourself" in page
    assert "All 3 checks were skipped: they need a running service." in page
    assert 'id="check-' not in page and "#check-" not in page, "one overview of the skipped checks, no cards"
    assert all(f"<code>{check.id}</code>" in page for check in (PASSING, FAILING, ERRORED))
    assert "3 required checks not passing" in page


def test_the_page_fetches_nothing_from_anywhere():
    for page in (render_html(mixed_result()), render_html(stage_failure_result())):
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
        assert not re.search(r"url\(", page, re.IGNORECASE)
        assert not re.search(r"<(?:script|link|img|iframe|object|embed)\b|@import", page, re.IGNORECASE)


# Figures: the chart and the table


def test_the_chart_draws_starter_yours_and_reference_to_scale():
    charts = read_charts(render_html(mixed_result())).charts

    bars = charts["queries-constant"]
    statements = bars["statements, page of 25"]
    assert set(statements) == {"starter", "yours", "reference"}
    assert statements["starter"] == pytest.approx(BAR_AREA), "the largest value fills its figure's scale"
    assert statements["yours"] / statements["starter"] == pytest.approx(38 / 76, abs=0.01)
    assert statements["reference"] / statements["starter"] == pytest.approx(2 / 76, abs=0.01)
    assert bars["requests/s"] == {"starter": pytest.approx(BAR_AREA * 4.0 / 12.5, abs=0.01),
                                  "yours": pytest.approx(BAR_AREA)}, "each figure on its own scale; no reference bar"
    assert set(bars["p95 ms"]) == {"starter", "reference"}, "no bar for a figure you did not measure"
    assert set(charts) == {"queries-constant"}, "only checks with figures get a chart"


def test_an_unmeasured_figure_reads_not_measured_in_the_chart_and_the_table():
    page = render_html(mixed_result())

    assert read_charts(page).missing_texts == [NOT_MEASURED, NOT_MEASURED], "yours of p95, the reference's of RPS"
    cells = re.findall(r'<td class="num col-(\w+) missing">([^<]*)</td>', page)
    assert cells == [("reference", NOT_MEASURED), ("yours", NOT_MEASURED)]


def test_the_chart_is_labelled_for_a_screen_reader():
    page = render_html(mixed_result())

    svg = re.search(r"<svg[^>]*>", page).group(0)
    assert 'role="img"' in svg
    assert '<title id="chart-queries-constant-title">Figures of queries-constant' in page
    assert "statements, page of 25 (lower is better): starter 76, yours 38, reference 2;" in page


def test_the_figures_note_when_the_calibration_was_measured():
    assert ("Starter and reference measured 2026-12-01T10:00:00Z on AMD EPYC, 2 cores (local provider)."
            in render_html(mixed_result()))
    assert "not measured on this machine yet" in render_html(run_result([FAILING], calibration=None))


def test_figure_chart_scales_each_figure_to_its_largest_value():
    rows = [{"name": "p50 ms", "starter": 680.0, "yours": 2600.0, "reference": 130.0},
            {"name": "requests/s", "starter": 3.92, "yours": None, "reference": 57.35}]

    chart = figure_chart("under-load", rows)

    p50, rps = chart.groups
    assert [bar.series for bar in p50.bars] == ["starter", "yours", "reference"]
    assert [bar.length for bar in p50.bars] == [pytest.approx(BAR_AREA * 680 / 2600, abs=0.01), BAR_AREA,
                                                pytest.approx(BAR_AREA * 130 / 2600, abs=0.01)]
    assert [bar.text for bar in p50.bars] == ["680", "2,600", "130"]
    assert [bar.text for bar in rps.bars] == ["3.92", NOT_MEASURED, "57.4"]
    assert [bar.drawn for bar in rps.bars] == [True, False, True]
    assert rps.bars[2].length == BAR_AREA
    assert rps.y > p50.bars[-1].y, "groups stack top to bottom"
    assert chart.height > rps.bars[-1].y


def test_figure_chart_copes_with_zeros_and_values_that_are_not_numbers():
    chart = figure_chart("under-load", [
        {"name": "failed requests", "starter": 0, "yours": 0, "reference": 0},
        {"name": "plan", "starter": "Seq Scan", "yours": True, "reference": None},
    ])

    zeros, words = chart.groups
    assert [(bar.length, bar.drawn, bar.text) for bar in zeros.bars] == [(0.0, True, "0")] * 3
    assert [(bar.drawn, bar.text) for bar in words.bars] == [(False, "Seq Scan"), (False, "True"),
                                                             (False, NOT_MEASURED)]
    assert figure_chart("under-load", []) is None


# Saved results of real runs


def cards(page: str) -> dict[str, str]:
    """Each check's card in the page, by check id."""
    return dict(re.findall(r'<article class="check [^"]*" id="check-([^"]+)">(.*?)</article>', page, re.DOTALL))


def test_a_check_title_is_shown_once_in_its_card():
    sample = sample_result("race-conditions-starter.json")
    page = render_html(sample).replace("&#39;", "'").replace("&gt;", ">")

    for check in sample.checks:
        assert cards(page)[check.id].count(check.title) == 1, check.id
        assert page.count(check.title) == 2, "once in the overview, once in its card"
        if check.passed and check.message != check.title:
            assert check.message not in page, "a passing check's message is its docstring: the title again"
        else:
            assert check.message in cards(page)[check.id]


def test_a_list_of_strings_in_the_evidence_is_a_bulleted_list():
    page = render_html(sample_result("race-conditions-starter.json"))

    card = cards(page)["idempotent-concurrent"]
    assert ('<dt>problems</dt>\n    <dd><ul class="evidence-lines"><li>8 orders were created</li>'
            "<li>8 charges were made</li><li>the stock of product 26 went from 277 to 276, but its orders add up to "
            "8 units</li></ul></dd>") in card
    assert "&#34;8 orders were created&#34;" not in page, "never the JSON list"
    assert "<li>" not in cards(page)["topup-no-lost-update"], "no list where the evidence has none"


class PassLineReader(HTMLParser):
    """What a chart says beside its bars: which way each figure is better, and the pass lines drawn."""

    def __init__(self):
        super().__init__()
        self.better: dict[str, str] = {}
        self.lines: list[float] = []
        self.labels: list[str] = []
        self._figure = ""
        self._reading = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "line" and "pass-line" in classes:
            self.lines.append(float(attributes["x1"]))
            assert attributes["x1"] == attributes["x2"], "an upright line"
        elif tag == "text" and classes and classes[0] in ("figure-name", "better", "pass-line-label"):
            self._reading = classes[0]

    def handle_endtag(self, tag):
        if tag == "text":
            self._reading = ""

    def handle_data(self, data):
        if self._reading == "figure-name":
            self._figure = data
        elif self._reading == "better":
            self.better[self._figure] = data
        elif self._reading == "pass-line-label":
            self.labels.append(f"{self._figure}: {data}")


def load_chart(page: str) -> PassLineReader:
    reader = PassLineReader()
    reader.feed(re.search(r'<svg class="chart"[^>]*aria-labelledby="chart-under-load-title.*?</svg>', page,
                          re.DOTALL).group(0))
    return reader


def test_a_load_chart_says_which_way_is_better_and_draws_the_pass_lines():
    sample = sample_result("slow-queries-reference.json")
    chart = load_chart(render_html(sample))

    assert chart.better == {"requests/s": HIGHER_IS_BETTER, "p50 ms": LOWER_IS_BETTER, "p95 ms": LOWER_IS_BETTER,
                            "p99 ms": LOWER_IS_BETTER, "failed requests": LOWER_IS_BETTER}, "requests sent: neither"
    # slow-queries' lab.toml: min_rps_ratio 0.333, max_p50_ratio 3, max_failures 0; the reference: 65.71 req/s, 140 ms
    assert chart.labels == ["requests/s: pass line: at least 21.9 (0.333× the reference's)",
                            "p50 ms: pass line: at most 420 (3× the reference's)",
                            "failed requests: pass line: at most 0"]
    assert chart.lines == [pytest.approx(BAR_LEFT + BAR_AREA * 0.333, abs=0.01),
                           pytest.approx(BAR_LEFT + BAR_AREA * 420 / 1100, abs=0.01), BAR_LEFT]
    page = render_html(sample)
    assert "requests/s (higher is better, pass line: at least 21.9 (0.333× the reference&#39;s)): starter 1.69" in page
    queries = cards(page)["queries-constant"]
    assert "lower is better" in queries and "pass-line" not in queries, "only a load check has pass lines"


def test_a_pass_line_beyond_every_value_sets_the_scale_and_its_label_stays_in_the_chart():
    rows = [{"name": "p50 ms", "starter": 300.0, "yours": 200.0, "reference": 100.0},
            {"name": "requests/s", "starter": 10.0, "yours": 12.0, "reference": 100.0}]
    chart = figure_chart("under-load", rows, {"p50 ms": PassLine(800.0, "pass line: at most 800 (8× the reference's)"),
                                              "requests/s": PassLine(12.5, "pass line: at least 12.5")})

    p50, rps = chart.groups
    assert p50.scale_max == 800.0 and p50.pass_mark.x == BAR_LEFT + BAR_AREA
    assert p50.pass_mark.anchor == "end" and p50.pass_mark.text_x == BAR_LEFT + BAR_AREA, "ends at the line"
    assert rps.pass_mark.anchor == "start" and rps.pass_mark.text_x == rps.pass_mark.x < BAR_LEFT + BAR_AREA / 2
    assert p50.pass_mark.top < p50.bars[0].y and p50.pass_mark.bottom > p50.bars[-1].y, "across all three bars"
    assert rps.y > p50.pass_mark.text_y, "the label has its own room, above the next figure"
    assert all(mark.text_x <= CHART_WIDTH for mark in (p50.pass_mark, rps.pass_mark))


# Writing it


def test_write_html_replaces_the_report_at_once(tmp_path: Path):
    path = tmp_path / ".lab" / "report.html"

    write_html(mixed_result(), path)
    write_html(run_result([PASSING]), path)

    assert "all required checks pass" in path.read_text(encoding="utf-8")
    assert [entry.name for entry in path.parent.iterdir()] == ["report.html"], "no staging file left behind"


def test_write_html_keeps_the_old_report_when_rendering_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "report.html"
    write_html(mixed_result(), path)

    def broken(result: RunResult) -> str:
        raise RuntimeError("template bug")

    monkeypatch.setattr(html_report, "render_html", broken)
    with pytest.raises(RuntimeError):
        write_html(mixed_result(), path)

    assert "2 required checks not passing" in path.read_text(encoding="utf-8")
    assert [entry.name for entry in tmp_path.iterdir()] == ["report.html"]


# In a real browser

BROWSER_TIMEOUT_SECONDS = 90
PASS_RGB, FAIL_RGB = (0x15, 0x80, 0x3D), (0xC6, 0x28, 0x28)  # --pass and --fail in templates/report/report.css


def browser() -> str:
    """Chromium's path; skips (or fails, where LAB_REQUIRE_BROWSER is set) when it or Pillow is missing."""
    found = next(filter(None, (shutil.which(name) for name in ("chromium", "chromium-browser"))), None)
    try:
        import PIL  # noqa: F401
    except ImportError:
        why_not = "Pillow is not installed (pip install -e '.[dev]')"
    else:
        why_not = "" if found else "no chromium binary on PATH (Debian: apt-get install -y chromium)"
    if why_not and os.environ.get("LAB_REQUIRE_BROWSER"):
        pytest.fail(f"LAB_REQUIRE_BROWSER is set but the browser test cannot run: {why_not}")
    if why_not:
        pytest.skip(why_not)
    return found


def run_browser(binary: str, profile: Path, *args: str) -> str:
    """Headless Chromium with a private profile; the whole process group is killed if it hangs."""
    # The sandbox needs user namespaces (absent as root and on many CI runners); the page is our own file.
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=BROWSER_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"Chromium did not finish within {BROWSER_TIMEOUT_SECONDS} s: {' '.join(command)}")
    assert process.returncode == 0, f"Chromium exited with {process.returncode}:\n{stderr[-3000:]}"
    return stdout


def pixels_near(counts: dict[tuple[int, int, int], int], rgb: tuple[int, int, int], tolerance: int = 8) -> int:
    return sum(count for colour, count in counts.items()
               if all(abs(channel - wanted) <= tolerance for channel, wanted in zip(colour, rgb, strict=True)))


def test_chromium_draws_the_report(tmp_path: Path):
    binary = browser()
    from PIL import Image

    page = tmp_path / "report.html"
    write_html(mixed_result(), page)
    screenshot = tmp_path / "report.png"

    run_browser(binary, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1200,1600",
                page.as_uri())
    dom = run_browser(binary, tmp_path / "profile", "--dump-dom", page.as_uri())

    with Image.open(screenshot) as image:
        assert image.size == (1200, 1600)
        counts = {colour: count for count, colour in image.convert("RGB").getcolors(maxcolors=1200 * 1600)}
    assert len(counts) > 200, f"a blank page: only {len(counts)} colours"
    assert pixels_near(counts, PASS_RGB) > 200, "the PASS badge's green is drawn"
    assert pixels_near(counts, FAIL_RGB) > 200, "the FAIL badge's red is drawn"
    for text in ("The slow catalogue: N+1 queries, missing indexes, unbounded pages", "FAIL", HINT,
                 *(check.id for check in (PASSING, FAILING, ERRORED, SKIPPED))):
        assert text in dom


def test_chromium_draws_the_pass_lines_and_the_bulleted_problems(tmp_path: Path):
    binary = browser()
    from PIL import Image

    sample = sample_result("slow-queries-reference.json")  # every check passes: no red but the pass lines'
    page = tmp_path / "report.html"
    write_html(sample, page)
    screenshot = tmp_path / "report.png"

    run_browser(binary, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1200,4000", page.as_uri())
    dom = run_browser(binary, tmp_path / "profile", "--dump-dom", page.as_uri())

    with Image.open(screenshot) as image:
        counts = {colour: count for count, colour in image.convert("RGB").getcolors(maxcolors=1200 * 4000)}
    assert pixels_near(counts, FAIL_RGB, tolerance=40) > 150, "three dashed red pass lines and their labels"
    assert "pass line: at least 21.9" in dom and "higher is better" in dom and "lower is better" in dom

    race = tmp_path / "race.html"
    write_html(sample_result("race-conditions-starter.json"), race)
    dom = run_browser(binary, tmp_path / "profile", "--dump-dom", race.as_uri())
    assert '<ul class="evidence-lines"><li>sold 44 units of 11</li>' in dom


def test_a_partial_run_is_marked_as_one():
    page = render_html(run_result([PASSING], only=("product-detail",)))
    assert "A partial run" in page and "of product-detail and the checks it depends on: 1 check," in page
    assert "not the lab's result" in page
    assert "A partial run" not in render_html(run_result([PASSING]))
