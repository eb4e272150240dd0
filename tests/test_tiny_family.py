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


def test_contract_tests_and_consumers_take_up_a_new_family():
    """One fresh-process run of the tiny family's own tests (listing, checkpoint loading, mm backbone, export,
    benchmark and docs tables: 5) and of the contract and FX / TorchScript tests selected for it (thirteen and
    six per family's smallest variant: 19); every one of them passes."""
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rA', '-p', 'no:xdist', '-p', 'no:cacheprovider',
                             '-p', 'tiny_family', 'tests/tiny_family.py', 'tests/test_contract.py',
                             'tests/test_fx_script.py', '-k', 'tinynet'],
                            cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    outcomes = re.findall(r'^(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) (tests/[\w.]+)::', result.stdout, re.M)

    def passed(*files):
        mine = [outcome for outcome, path in outcomes if path.split('/')[-1] in files]
        assert set(mine) == {'PASSED'}, (files, mine, result.stdout[-2000:])
        return len(mine)
    assert passed('test_contract.py', 'test_fx_script.py') == 19
    assert passed('tiny_family.py') == 5
