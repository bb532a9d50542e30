"""io.py and the run directory's lock: whole-or-nothing writes, atomic directory replacement
under SIGKILL, failed writes that name their path, and one writer per run directory."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crossgen.cli import main
from crossgen.errors import StorageError
from crossgen.io import DirectoryLock, atomic_path, write_text

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

REPLACER = r"""
import sys
from pathlib import Path
from crossgen.io import atomic_path
target = Path(sys.argv[1])
for version in range(10**6):
    with atomic_path(target) as tmp:
        tmp.mkdir()
        for i in range(40):
            (tmp / f"part{i}").write_bytes(str(version).encode() * 2000)
    print(version, flush=True)
"""


def test_directory_replacement_survives_sigkill_at_any_moment(tmp_path):
    """A checkpoint folder replaced over and over, killed at random moments: afterwards the
    folder exists and holds one whole version (all 40 parts of the same version)."""
    target = tmp_path / "checkpoint"
    rng = __import__("random").Random(0)
    for trial in range(10):  # the old rmtree-then-rename failed 4 of 12 such trials
        proc = subprocess.Popen([sys.executable, "-c", REPLACER, str(target)], stdout=subprocess.PIPE, env=ENV)
        assert proc.stdout.readline()  # at least one version is complete before the kill
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        parts = sorted(target.iterdir())
        assert len(parts) == 40, f"trial {trial}: {len(parts)} parts"
        assert len({p.read_bytes() for p in parts}) == 1, f"trial {trial}: mixed versions"


def test_failed_write_keeps_the_old_file_and_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    write_text(target, "old\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StorageError) as exc:
        write_text(target, "new\n")
    assert str(exc.value) == f"could not write {target}: No space left on device (the previous content is unchanged)"
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary left behind


def test_cli_reports_a_failed_write_in_one_line_with_exit_1(tmp_path, monkeypatch, capsys):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "replace", denied)
    code = main(["theory", "figure2", "--out", str(tmp_path / "figs"), "--replicates", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith(f"error: could not write {tmp_path / 'figs'}")
    assert err[0].endswith(": Permission denied (the previous content is unchanged)")


@pytest.mark.parametrize("setting, flushed", [("1", 4), ("0", 0)])
def test_writes_are_flushed_unless_crossgen_fsync_is_0(tmp_path, monkeypatch, setting, flushed):
    """The test suite runs with CROSSGEN_FSYNC=0 (conftest); a run's writes flush the file and
    its folder by default, and the same bytes land either way."""
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    monkeypatch.setenv("CROSSGEN_FSYNC", setting)
    write_text(tmp_path / "a.txt", "same\n")
    with atomic_path(tmp_path / "model") as tmp:
        tmp.mkdir()
        (tmp / "w").write_text("x")
    assert len(calls) == flushed  # the file and its folder, then the new folder's file and its parent
    assert (tmp_path / "a.txt").read_text() == "same\n" and (tmp_path / "model" / "w").read_text() == "x"


def test_a_bad_crossgen_fsync_is_refused_in_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CROSSGEN_FSYNC", "yes")
    code = main(["theory", "figure2", "--out", str(tmp_path / "figs"), "--replicates", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    allowed = "1 (flush every write to the disk, the default) or 0 (skip the flushes)"
    assert err == [f"error: invalid CROSSGEN_FSYNC: yes (allowed: {allowed})"]
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_removes_its_temporary_on_a_failed_directory_write(tmp_path):
    with pytest.raises(ValueError), atomic_path(tmp_path / "model") as tmp:
        tmp.mkdir()
        (tmp / "w").write_text("half")
        raise ValueError("crash while saving")
    assert list(tmp_path.iterdir()) == []


def test_lock_is_exclusive_and_released(tmp_path):
    with DirectoryLock(tmp_path):
        with pytest.raises(Exception) as exc:
            DirectoryLock(tmp_path).acquire()
        assert f"locked by pid {os.getpid()} on host" in str(exc.value)
    with DirectoryLock(tmp_path):  # released: can be taken again
        pass


def _run(out: Path, *extra: str, **env: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "crossgen", "run", "linear", "--out", str(out), "--set", "generations=3", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**ENV, **env})


def _wait_stopped(pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().split(") ")[1].startswith("T"):
                return
        time.sleep(0.05)
    raise AssertionError("the first run never reached its stop point")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_two_concurrent_resumes_one_gets_exit_2_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    first = _run(out, CROSSGEN_STOP_AT="gen1.complete")  # pauses while holding the lock
    _wait_stopped(first.pid)
    second = _run(out, "--resume")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2
    assert err.strip() == (
        f"error: invalid --out: {out} (allowed: a run directory no other process is "
        f"writing (locked by pid {first.pid} on host {os.uname().nodename}))"
    )
    first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=120) == 0
    assert '"status": "complete"' in (out / "manifest.json").read_text()


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    first = _run(out, CROSSGEN_KILL_AT="gen1.complete")
    first.wait(timeout=120)
    assert first.returncode == -signal.SIGKILL and (out / ".lock").is_file()
    resumed = _run(out, "--resume")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert '"status": "complete"' in (out / "manifest.json").read_text()
