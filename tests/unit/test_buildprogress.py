"""The terminal display of build steps (rich): steps on stdout, warnings on stderr."""

import pytest


def test_terminal_build_steps_print_warnings_to_stderr(capsys):
    pytest.importorskip("rich")
    from rootless_box.ui.buildprogress import RichSteps
    steps = RichSteps()
    steps("step", "STEP 1/2: FROM [base]")
    steps("warning", "one or more build args were not consumed: X")
    steps("done", "--> abc")
    out, err = capsys.readouterr()
    assert "STEP 1/2" in out and "FROM [base]" in out and "--> abc" in out
    assert "not consumed: X" in err and "not consumed" not in out
