"""The pure parts of the container listings: ps's STATUS texts and truncation, its filter
values, top's columns, stats' sizes, and template methods with arguments (`.Label "k"`)."""

import calendar
import time

import pytest

from rootless_box.commands import ps, stats, top
from rootless_box.commands._template import compile_template, render
from rootless_box.errors import UsageError
from rootless_box.ops import psfilter

NOW = calendar.timegm((2024, 1, 31, 12, 0, 0))


def at(seconds_ago):
    return time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime(NOW - seconds_ago))


@pytest.mark.parametrize("state,text", [
    ({"Status": "running", "StartedAt": at(3)}, "Up 3 seconds"),
    ({"Status": "running", "StartedAt": at(0)}, "Up Less than a second"),
    ({"Status": "paused", "StartedAt": at(150)}, "Up 2 minutes (Paused)"),
    ({"Status": "restarting", "ExitCode": 1, "StartedAt": at(9), "FinishedAt": at(2)},
     "Restarting (1) 2 seconds ago"),
    ({"Status": "exited", "ExitCode": 0, "StartedAt": at(9), "FinishedAt": at(5)},
     "Exited (0) 5 seconds ago"),
    ({"Status": "exited", "ExitCode": 137, "StartedAt": at(9000), "FinishedAt": at(7200)},
     "Exited (137) 2 hours ago"),
    ({"Status": "created"}, "Created"),
    # a container that never started reads as created, as Docker's State.String
    ({"Status": "exited", "ExitCode": 0}, "Created"),
])
def test_status_text(state, text):
    assert ps.status_text(state, NOW) == text


def test_command_cell_is_cut_to_twenty_and_quoted():
    record = {"Path": "sh", "Args": ["-c", "echo hello > /greeting"]}
    assert ps._command_text(record, False) == '"sh -c echo hello > …"'
    assert ps._command_text(record, True) == '"sh -c echo hello > /greeting"'
    assert ps.ellipsis("short", 15) == "short"
    assert len(ps.ellipsis("x" * 40, 15)) == 15


def test_filter_values_are_checked():
    assert psfilter.check_values({"status": ["running", "exited"], "exited": ["0", "137"]}) \
        == [0, 137]
    with pytest.raises(UsageError):
        psfilter.check_values({"status": ["sleeping"]})
    with pytest.raises(UsageError):
        psfilter.check_values({"exited": ["zero"]})


def test_name_filter_is_a_regex_search():
    assert psfilter._search("web", "my-web-1")
    assert psfilter._search("^/x$", "/x")
    assert not psfilter._search("^x$", "/x")
    assert not psfilter._search("(", "anything")  # a bad pattern matches nothing


def test_top_columns():
    assert top.tty_name(0) == "?"
    assert top.tty_name((136 << 8) | 3) == "pts/3"
    assert top.tty_name((4 << 8) | 1) == "tty1"
    assert top.cpu_time(0) == "00:00:00"
    assert top.cpu_time(3723.9) == "01:02:03"
    assert top.cpu_time(2 * 86400 + 5) == "2-00:00:05"
    now = time.mktime((2024, 6, 15, 12, 0, 0, 0, 0, -1))
    assert top.start_time(now - 3600, now) == time.strftime("%H:%M", time.localtime(now - 3600))
    assert top.start_time(now - 40 * 86400, now) == time.strftime(
        "%b%d", time.localtime(now - 40 * 86400))
    assert top.start_time(now - 400 * 86400, now) == "2023"


def test_stats_sizes_are_go_units():
    assert stats.bytes_size(0) == "0B"
    assert stats.bytes_size(1536) == "1.5KiB"
    assert stats.bytes_size(8 * 1024 ** 3) == "8GiB"
    assert stats.bytes_size(1863680) == "1.777MiB"


def test_stats_row_of_a_stopped_container_is_zeros():
    record = {"Id": "a" * 64, "Name": "n", "HostConfig": {"NetworkMode": "none"}}
    row = stats.stat_row("n", record, None, None, 0.5, 1 << 30, True)
    assert row == {"Container": "n", "ID": "a" * 12, "Name": "n", "CPUPerc": "0.00%",
                   "MemUsage": "0B / 0B", "MemPerc": "0.00%", "NetIO": "0B / 0B",
                   "BlockIO": "0B / 0B", "PIDs": "0"}
    busy = stats.stat_row("n", record, {"ticks": 0}, {
        "ticks": 50, "memory": 1 << 20, "read": 0, "write": 2000, "tasks": 2}, 0.5, 1 << 30,
        True)
    assert busy["CPUPerc"] == "%.2f%%" % (50 / stats.procstats.CLK_TCK / 0.5 * 100)
    assert busy["MemUsage"] == "1MiB / 1GiB" and busy["MemPerc"] == "0.10%"
    assert busy["BlockIO"] == "0B / 2kB" and busy["PIDs"] == "2"


def test_template_methods_take_arguments():
    row = {"Label": lambda key: {"tier": "base"}.get(key, ""), "Names": "x"}
    assert render(compile_template('{{.Names}}:{{.Label "tier"}}:{{.Label "none"}}'), row) \
        == "x:base:"
    with pytest.raises(UsageError):
        render(compile_template('{{.Names "x"}}'), row)
