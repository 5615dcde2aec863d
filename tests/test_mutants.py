"""Every deliberate breakage in ``tests/mutants.py`` is caught: its tests, run with the mutant
applied, fail (the test that protects each behaviour can fail)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mutants import MUTANT_ENV, MUTANTS

TESTS = Path(__file__).resolve().parent


def run_with_mutant(name: str, tests: tuple[str, ...]) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, MUTANT_ENV: name, "PYTHONPATH": path}
    command = [sys.executable, "-m", "pytest", "-p", "mutants", "-x", "-q", "-rfE",
               *tests]  # fmt: skip
    return subprocess.run(command, cwd=TESTS.parent, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_killed_by_its_tests(mutant):
    done = run_with_mutant(mutant.name, mutant.killers)
    output = done.stdout + done.stderr
    assert f"mutant {mutant.name}: " in output, output[-3000:]  # the plugin applied it
    failed = re.findall(r"^FAILED (\S+)", done.stdout, flags=re.M)
    killed_by = [test for test in failed if test.startswith(mutant.killers)]
    assert done.returncode == 1 and killed_by, (
        f"mutant {mutant.name} ({mutant.breaks}) survived {mutant.killers}: exit "
        f"{done.returncode}\n{output[-3000:]}"
    )


def test_an_unknown_mutant_is_a_usage_error():
    done = run_with_mutant("no-such-mutant", ("tests/test_mutants.py",))
    assert done.returncode == 4 and "no such mutant" in done.stdout + done.stderr
