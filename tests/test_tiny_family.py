"""A new family needs its own file and nothing else: tests/tiny_family.py declares a ninth family the way the
eight declare theirs, and in a fresh process the registry-wide contract and FX / TorchScript tests, checkpoint
loading, the mm backbone, export, the benchmark and the docs tables all take it up from its record."""
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


pytestmark = pytest.mark.slow  # a pytest run of its own, in a fresh process


@pytest.fixture(scope='module')
def tiny_run():
    """One fresh-process run of the tiny family's own tests and of the contract and FX / TorchScript tests
    selected for it; the outcome of each test, by file."""
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rA', '-p', 'no:xdist', '-p', 'no:cacheprovider',
                             '-p', 'tiny_family', 'tests/tiny_family.py', 'tests/test_contract.py',
                             'tests/test_fx_script.py', '-k', 'tinynet'],
                            cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    outcomes = re.findall(r'^(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) (tests/[\w.]+)::', result.stdout, re.M)
    assert outcomes, result.stdout[-4000:]
    return outcomes


def _passed(outcomes, *files):
    mine = [outcome for outcome, path in outcomes if path.split('/')[-1] in files]
    assert set(mine) == {'PASSED'}, mine
    return len(mine)


def test_contract_tests_take_up_a_new_family(tiny_run):
    # twelve contract tests and six FX / TorchScript ones per family's smallest variant
    assert _passed(tiny_run, 'test_contract.py', 'test_fx_script.py') == 18


def test_consumers_take_up_a_new_family_from_its_record(tiny_run):
    assert _passed(tiny_run, 'tiny_family.py') == 5
