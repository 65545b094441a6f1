"""What a failed engine run leaves behind (workflow/scripts/mark_failed.py, issue 8 item 22).

An engine error (exit 1/2) is recorded under `tolerate_failed_runs` so the report can go on; a kill (OOM
killer: SIGKILL, exit 137) is never recorded, so that the next invocation retries it instead of saying
"Nothing to be done" forever.
"""

import json

from mark_failed import main


def _files(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("tick 4 round 8\nValueError: bad\n")
    cfg = tmp_path / "c.json"
    cfg.write_text('{"method": "fedgmr"}')
    return ["--out", str(tmp_path / "run"), "--log", str(log), "--config", str(cfg)]


def test_engine_error_is_recorded_when_tolerated(tmp_path):
    assert main(["--exit-status", "1", *_files(tmp_path)]) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info == {"status": "failed", "error": "ValueError: bad"}


def test_engine_error_fails_the_job_when_strict(tmp_path):
    assert main(["--exit-status", "2", "--strict", *_files(tmp_path)]) == 2
    assert not (tmp_path / "run").exists()


def test_killed_run_is_not_recorded(tmp_path, capsys):
    for status in (137, 143, 130):  # SIGKILL (OOM killer), SIGTERM (time limit), Ctrl-C
        assert main(["--exit-status", str(status), *_files(tmp_path)]) == status
        assert not (tmp_path / "run").exists()
    err = capsys.readouterr().err
    assert "killed by SIGKILL" in err and "resumes" in err and "--unlock" in err
