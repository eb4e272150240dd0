"""A new family needs its own file and nothing else: tests/tiny_family.py declares a ninth family the way the
eight declare theirs, and in a fresh process the registry-wide contract and FX / TorchScript tests, checkpoint
loading, the mm backbone, export, the benchmark and the docs tables all take it up from its record."""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _pytest(*args):
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:xdist', '-p', 'no:cacheprovider',
                             '-p', 'tiny_family', *args], cwd=os.path.dirname(HERE), env=env,
                            capture_output=True, text=True, timeout=600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ''
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return summary


def test_contract_tests_take_up_a_new_family():
    # twelve contract tests and six FX / TorchScript ones per family's smallest variant
    summary = _pytest('tests/test_contract.py', 'tests/test_fx_script.py', '-k', 'tinynet')
    passed = int(re.search(r'(\d+) passed', summary).group(1))
    assert passed == 18 and 'failed' not in summary and 'skipped' not in summary, summary


def test_consumers_take_up_a_new_family_from_its_record():
    summary = _pytest('tests/tiny_family.py')
    assert re.search(r'\b5 passed', summary) and 'failed' not in summary, summary
