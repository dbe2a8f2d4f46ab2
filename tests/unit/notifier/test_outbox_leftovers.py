"""A writer killed mid-write leaves a temporary file; the next outbox channel removes it."""

import os
import subprocess
import sys

from opora_notifier.channels.outbox import OutboxChannel


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_files_of_dead_writers_go_and_live_ones_stay(tmp_path):
    (tmp_path / "team").mkdir()
    dead = dead_pid()
    leftovers = [tmp_path / f"1042-abc.tmp{dead}", tmp_path / "team" / f"1042-def.tmp{dead}"]
    live = tmp_path / f"1043-ghi.tmp{os.getpid()}"
    done = tmp_path / "1041-jkl.eml"
    for path in (*leftovers, live, done):
        path.write_bytes(b"Subject: x\r\n\r\n")
    channel = OutboxChannel(tmp_path)
    assert channel.removed_leftovers == 2
    assert not any(path.exists() for path in leftovers)
    assert live.exists()
    assert done.exists()


def test_a_missing_outbox_is_no_problem(tmp_path):
    assert OutboxChannel(tmp_path / "not-yet").removed_leftovers == 0
