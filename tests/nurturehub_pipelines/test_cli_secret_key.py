"""The generated secret key (issue 11, item 9): processes starting at once on a fresh NURTUREHUB_HOME all
end up with one whole key, the one in the file; none reads it half-written or fails because another won."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import REPO

PROCESSES = 6
RACES = 100  # the old create-then-write lost about one race in ten here (a FileExistsError or an empty key)

# One process of several: it waits for the starting gun (a home on stdin), then asks for that home's key.
# The processes start once and race many times, so the test is quick and the races are close.
RACER = """
import os, sys
from nurturehub_pipelines import settings
print("ready", flush=True)
for home in iter(sys.stdin.readline, ""):
    os.environ["NURTUREHUB_HOME"] = home.strip()
    try:
        print(settings.secret_key().decode(), flush=True)
    except Exception as exc:
        print("failed:", type(exc).__name__, exc, flush=True)
"""


def test_processes_starting_together_on_a_fresh_home_share_one_whole_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NURTUREHUB_SECRET_KEY"}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for _ in range(PROCESSES)
    ]
    try:
        assert [racer.stdout.readline().strip() for racer in racers] == ["ready"] * PROCESSES
        lost = []
        for race in range(RACES):
            home = tmp_path / f"home{race}"
            for racer in racers:  # the gun: every process at once
                racer.stdin.write(f"{home}\n")
                racer.stdin.flush()
            keys = [racer.stdout.readline().strip() for racer in racers]
            stored = (home / "secret_key").read_text().strip()
            if set(keys) != {stored} or len(stored) < 40:
                lost.append((race, keys, stored))
            assert sorted(p.name for p in home.iterdir()) == ["secret_key"]  # no temporary file left behind
            assert (home / "secret_key").stat().st_mode & 0o077 == 0  # readable by its owner only
        assert lost == []  # every process got the file's whole key, every time
    finally:
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=30)


def test_an_empty_key_file_is_refused_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nurturehub_pipelines import settings

    monkeypatch.delenv("NURTUREHUB_SECRET_KEY", raising=False)
    monkeypatch.setenv("NURTUREHUB_HOME", str(tmp_path))
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(ValueError, match="secret key file .* is empty"):
        settings.secret_key()
