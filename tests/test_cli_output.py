"""What `taskqueue` prints (taskqueue/cli/output.py): an error as one line, no
password, the traceback only with -v; tables; times read from options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskqueue.cli.output import table, zoned
from taskqueue.config import ConfigError
from tests.api_helpers import free_port
from tests.cli_helpers import run


def test_errors_are_one_line_and_the_traceback_needs_v(tmp_path: Path) -> None:
    nowhere = f"postgresql://app:pw-s3cret@127.0.0.1:{free_port()}/none"
    cases = [
        (["--database-url", nowhere, "stats"], {}, "ConnectionRefusedError"),
        (["--database-url", nowhere, "migrate"], {}, "connection"),
        (
            ["--database-url", nowhere, "worker", "--handlers", "no_such_module"],
            {},
            "no_such_module",
        ),
        (["worker"], {"TASKQUEUE_CONCURRENCY": "abc"}, "TASKQUEUE_CONCURRENCY: expected int"),
    ]
    for args, env, expected in cases:
        result = run(*args, env=env, cwd=tmp_path)
        assert result.returncode in (1, 2), result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("taskqueue: error: ") and expected in lines[0], lines
        assert "s3cret" not in result.stderr
    verbose = run("-v", "--database-url", nowhere, "stats", cwd=tmp_path)
    assert "Traceback" in verbose.stderr
    assert "s3cret" not in verbose.stderr.splitlines()[-1]


def test_tables_align_columns_and_show_none_as_blank() -> None:
    assert table(("a", "long header"), [("wide cell", None), (1, 2)]).splitlines() == [
        "a          long header",
        "wide cell",
        "1          2",
    ]


def test_times_given_as_options_must_name_their_zone() -> None:
    assert zoned(None, "--since") is None
    assert zoned("2026-01-31T12:00:00Z", "--since") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    for text, problem in (("junk", "not an ISO 8601 time"), ("2026-01-31", "give a time zone")):
        with pytest.raises(ConfigError, match=f"--since: {problem}"):
            zoned(text, "--since")
