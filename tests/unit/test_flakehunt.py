"""Issue 24, item 3: the flake hunter's reading of pytest's reports (pure)."""

from __future__ import annotations

from tests.flakehunt import merge, read_junit, report

ROUND_1 = """<?xml version="1.0"?><testsuites><testsuite>
<testcase classname="tests.integration.test_a" name="test_ok" time="1.5"/>
<testcase classname="tests.integration.test_a" name="test_flaky" time="20.0"/>
<testcase classname="tests.integration.test_b" name="test_skip" time="0"><skipped/></testcase>
</testsuite></testsuites>"""
ROUND_2 = """<?xml version="1.0"?><testsuites><testsuite>
<testcase classname="tests.integration.test_a" name="test_ok" time="2.5"/>
<testcase classname="tests.integration.test_a" name="test_flaky" time="130.0">
  <failure message="x"/></testcase>
<testcase classname="tests.integration.test_b" name="test_skip" time="0"><skipped/></testcase>
<testcase classname="tests.integration.test_b" name="test_teardown" time="3"/>
<testcase classname="tests.integration.test_b" name="test_teardown" time="0">
  <error message="e"/></testcase>
</testsuite></testsuites>"""


def test_each_test_is_counted_with_the_seeds_it_failed_with() -> None:
    outcomes = merge([(11, read_junit(ROUND_1)), (22, read_junit(ROUND_2))])
    ok = outcomes["tests.integration.test_a::test_ok"]
    flaky = outcomes["tests.integration.test_a::test_flaky"]
    torn = outcomes["tests.integration.test_b::test_teardown"]
    assert (ok.passed, ok.failed_seeds, ok.runs) == (2, [], 2)
    assert (flaky.passed, flaky.failed_seeds) == (1, [22])
    assert torn.failed_seeds == [22]  # an error in tear-down is a failure
    assert outcomes["tests.integration.test_b::test_skip"].skipped == 2


def test_the_report_names_flaky_tests_with_seeds_and_the_slowest_first() -> None:
    outcomes = merge([(11, read_junit(ROUND_1)), (22, read_junit(ROUND_2))])
    lines = report(outcomes, 2, slowest=2)
    assert lines[0] == "4 tests over 2 round(s): 2 failed at least once"
    flaky = next(line for line in lines if line.endswith("test_a::test_flaky"))
    assert flaky.split()[:2] == ["1/2", "22"]
    slow = lines[lines.index("slowest 2 (median, max seconds):") + 1 :]
    assert slow[0].split() == ["75.0", "130.0", "tests.integration.test_a::test_flaky"]
    assert len(slow) == 2
