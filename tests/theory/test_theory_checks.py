"""`python -m theory.checks` as a user runs it: exit status, table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "theory.checks", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_checks_cli_table_passes():
    res = _run()
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["claim", "method", "status", "detail"]
    rows = [line for line in lines[1:] if line and not line.startswith(tuple("0123456789"))]
    assert len(rows) >= 12
    assert all(row.split()[2] == "pass" or row.split()[3] == "pass" for row in rows)


@pytest.mark.slow
def test_checks_cli_json():
    res = _run("--json", "--seed", "7")
    assert res.returncode == 0, res.stderr
    table = json.loads(res.stdout)
    assert len(table) >= 12
    assert {"claim", "method", "status", "detail"} <= set(table[0])
    assert all(row["status"] == "pass" for row in table)
    assert sum(row["method"] == "symbolic+numeric" for row in table) >= 12


def test_checks_fail_exit_nonzero(monkeypatch, capsys):
    from theory import checks
    bad = checks.Claim("always_false", "a claim that fails", lambda rng: (False, "by design"))
    monkeypatch.setattr(checks, "REGISTRY", [*checks.REGISTRY[:1], bad])
    assert checks.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "always_false" in out
