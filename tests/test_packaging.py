"""Packaging: pyproject.toml declares every third-party package the code imports, in the right place (core
``dependencies`` or the extra of the subpackage that needs it), as compatible ranges that agree with the
patches' supported ranges and with the known-good pins in constraints.txt; and (slow) the sdist and wheel
build, and the wheel installed outside the repository works."""
import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import tomllib
import zipfile
from functools import lru_cache
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / 'pyproject.toml').read_text())
PROJECT = PYPROJECT['project']
NAME = canonicalize_name(PROJECT['name'])
CONSTRAINTS = ROOT / 'constraints.txt'

# import name -> distribution name, where the two differ (anything else: the installed distributions' own
# record, importlib.metadata.packages_distributions, then the import name itself)
DISTRIBUTIONS = {
    'yaml': 'pyyaml', 'PIL': 'pillow', 'sklearn': 'scikit-learn', 'skimage': 'scikit-image',
    'mmseg': 'mmsegmentation', 'cv2': 'opencv-python', 'huggingface_hub': 'huggingface-hub',
    'pycocotools': 'pycocotools', 'google.protobuf': 'protobuf', 'attr': 'attrs', 'dateutil': 'python-dateutil',
}
# modules of one distribution that need another one installed
SUBMODULE_DISTRIBUTIONS = {'torch.utils.tensorboard': 'tensorboard'}
# subpackages and modules that only an extra's users import (the core never imports them): what they import
# when imported may come from that extra, besides the core dependencies
EXTRA_MODULES = {'zoo.mm': 'mm', 'zoo.train': 'train', 'zoo.patches.mmengine_checkpoint': 'mm'}
# zoo/patches/<file> patches <distribution>: its SUPPORTED range is the declared range, TESTED the pin
PATCHED = {'onednn.py': 'torch', 'timm_names.py': 'timm', 'mmengine_checkpoint.py': 'mmengine'}
# where the code lives that the checks walk
SOURCE_DIRS = ('zoo', 'tools', 'tests')


# ------------------------------------------------------------------------------------------ pyproject.toml


def _requirements(specs) -> List[Requirement]:
    return [Requirement(s) for s in specs]


@lru_cache(maxsize=None)
def _extra(extra: str) -> Tuple[Requirement, ...]:
    """An extra's requirements, with the project's own extras it names (``zoo-backbones[train]``) expanded."""
    out = []
    for req in _requirements(PROJECT['optional-dependencies'][extra]):
        if canonicalize_name(req.name) == NAME:
            for inner in sorted(req.extras):
                out.extend(_extra(inner))
        else:
            out.append(req)
    return tuple(out)


def _names(reqs) -> Set[str]:
    return {canonicalize_name(r.name) for r in reqs}


CORE = _names(_requirements(PROJECT['dependencies']))
EXTRAS = {extra: _names(_extra(extra)) for extra in PROJECT['optional-dependencies']}
DECLARED = CORE.union(*EXTRAS.values())


def _all_requirements() -> Iterator[Tuple[str, Requirement]]:
    for spec in PROJECT['dependencies']:
        yield 'dependencies', Requirement(spec)
    for extra, specs in PROJECT['optional-dependencies'].items():
        for spec in specs:
            req = Requirement(spec)
            if canonicalize_name(req.name) != NAME:
                yield f'[{extra}]', req


def _constraints() -> Dict[str, Version]:
    pins = {}
    for num, line in enumerate(CONSTRAINTS.read_text().splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r'([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)', line)
        assert m, f'constraints.txt:{num}: {line!r} is not an exact `name==version` pin'
        name = canonicalize_name(m.group(1))
        assert name not in pins, f'constraints.txt:{num}: {name} pinned twice'
        pins[name] = Version(m.group(2))
    return pins


# ------------------------------------------------------------------------------------------ imports in the code


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _is_guarded(node: ast.AST) -> bool:
    """An ``if TYPE_CHECKING:`` block, or a ``try`` that catches ImportError: its imports are optional."""
    if isinstance(node, ast.If):
        test = node.test
        return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
            isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')
    if isinstance(node, ast.Try):
        for handler in node.handlers:
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            if any(isinstance(t, ast.Name) and t.id in ('ImportError', 'ModuleNotFoundError') for t in types):
                return True
    return False


def _imports(path: Path, source: Optional[str] = None) -> Iterator[Tuple[str, int, bool]]:
    """(absolute module name, line, at import time) of every import in a file. At import time: run when the
    module is imported (module level and class bodies), not inside a function or an optional-import guard."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    package = _module_name(path) if path.name == '__init__.py' else _module_name(path).rpartition('.')[0]

    def visit(node, eager):
        for child in ast.iter_child_nodes(node):
            child_eager = eager and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            child_eager = child_eager and not _is_guarded(child)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, child_eager
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split('.')
                    base = base[:len(base) - (child.level - 1)]
                    module = '.'.join(base + ([child.module] if child.module else []))
                else:
                    module = child.module
                yield module, child.lineno, child_eager
                for alias in child.names:   # `from . import x` / `from .pkg import sub`: a submodule too
                    yield f'{module}.{alias.name}', child.lineno, child_eager
            yield from visit(child, child_eager)

    yield from visit(tree, True)


def _local_names() -> Set[str]:
    """Modules the tools and tests import from their own folders (``sys.path`` set up by them or by pytest)."""
    names = set()
    for folder in ('tools', 'tests'):
        for p in (ROOT / folder).iterdir():
            if p.suffix == '.py' or (p.is_dir() and (p / '__init__.py').exists()):
                names.add(p.stem)
    return names


def _source_files() -> List[Path]:
    files = []
    for folder in SOURCE_DIRS:
        files += [p for p in sorted((ROOT / folder).rglob('*.py')) if '__pycache__' not in p.parts]
    return files


@lru_cache(maxsize=None)
def _installed_distributions() -> Dict[str, List[str]]:
    return packages_distributions()


def _distributions_of(module: str) -> Set[str]:
    """The distribution names that may provide ``module``; empty for the standard library and the zoo."""
    top = module.split('.')[0]
    if top in sys.stdlib_module_names or top == '__future__' or top == 'zoo' or top in _local_names():
        return set()
    for prefix, dist in SUBMODULE_DISTRIBUTIONS.items():
        if module == prefix or module.startswith(prefix + '.'):
            return {canonicalize_name(dist)}
    for name in (module, top):
        if name in DISTRIBUTIONS:
            return {canonicalize_name(DISTRIBUTIONS[name])}
    found = _installed_distributions().get(top)
    return {canonicalize_name(d) for d in found} if found else {canonicalize_name(top)}


def _third_party_imports() -> Iterator[Tuple[Path, int, str, Set[str], bool]]:
    for path in _source_files():
        for module, line, eager in _imports(path):
            dists = _distributions_of(module)
            if dists:
                yield path, line, module, dists, eager


def _where(path: Path, line: int) -> str:
    return f'{path.relative_to(ROOT)}:{line}'


# ------------------------------------------------------------------------------------------ the checks


def test_every_import_is_declared():
    """Every third-party package imported anywhere in zoo/, tools/ and tests/ is a dependency or in an extra."""
    missing = [f'{_where(p, line)}: import {module} -> {" or ".join(sorted(dists))}'
               for p, line, module, dists, _ in _third_party_imports() if not dists & DECLARED]
    assert not missing, 'not in pyproject.toml [project] dependencies or optional-dependencies:\n' + '\n'.join(missing)


def test_import_time_dependencies_are_in_the_right_place():
    """What a zoo module imports when it is imported must be installed by ``pip install <project>`` alone, or by
    the extra of its subpackage (EXTRA_MODULES: zoo.mm -> [mm], zoo.train -> [train])."""
    wrong = []
    for path, line, module, dists, eager in _third_party_imports():
        if not eager or path.relative_to(ROOT).parts[0] != 'zoo':
            continue
        owner = _module_name(path)
        allowed = set(CORE)
        for sub, extra in EXTRA_MODULES.items():
            if _in(owner, [sub]):
                allowed |= EXTRAS[extra]
        if not dists & allowed:
            wrong.append(f'{_where(path, line)}: import {module} -> {" or ".join(sorted(dists))}')
    assert not wrong, ('imported when the module is imported, but not a core dependency (or one of its '
                       'subpackage\'s extra):\n' + '\n'.join(wrong))


def test_core_does_not_import_the_extras_subpackages():
    """The rest of the package never imports EXTRA_MODULES at import time (so their extras stay optional)."""
    wrong = []
    for path in _source_files():
        owner = _module_name(path)
        if path.relative_to(ROOT).parts[0] != 'zoo' or _in(owner, EXTRA_MODULES):
            continue
        for module, line, eager in _imports(path):
            if eager and _in(module, EXTRA_MODULES):
                wrong.append(f'{_where(path, line)}: {owner} imports {module}')
    assert not wrong, '\n'.join(wrong)


def _in(module: str, owners) -> bool:
    return any(module == o or module.startswith(o + '.') for o in owners)


def test_the_import_walker_sees_lazy_and_relative_imports():
    src = textwrap.dedent('''
        import yaml
        from . import sibling
        from ..weights import checksum
        class A:
            import PIL.Image
        def f():
            from torch.utils.tensorboard import SummaryWriter
        try:
            import onnx
        except ImportError:
            onnx = None
    ''')
    got = {(m, eager) for m, _, eager in _imports(ROOT / 'zoo' / 'train' / 'fake.py', src)}
    assert {('yaml', True), ('zoo.train', True), ('zoo.train.sibling', True), ('zoo.weights', True),
            ('zoo.weights.checksum', True), ('PIL.Image', True), ('torch.utils.tensorboard', False),
            ('onnx', False)} <= got
    assert _distributions_of('torch.utils.tensorboard') == {'tensorboard'}
    assert _distributions_of('sklearn.datasets') == {'scikit-learn'}
    assert _distributions_of('tomllib') == set() and _distributions_of('zoo.mm') == set()


def test_license_is_an_spdx_string_with_its_file():
    assert PROJECT['license'] == 'Apache-2.0'     # a PEP 639 SPDX expression, not a {text = ...} table
    assert PROJECT['license-files'] == ['LICENSE']
    assert (ROOT / 'LICENSE').read_text().lstrip().startswith('Apache License')
    assert not [c for c in PROJECT.get('classifiers', []) if c.startswith('License ::')]   # PEP 639 forbids both
    setuptools = [Requirement(r) for r in PYPROJECT['build-system']['requires'] if r.startswith('setuptools')]
    assert len(setuptools) == 1 and '77' in setuptools[0].specifier and '76.9' not in setuptools[0].specifier


def test_python_and_package_data():
    supported = SpecifierSet(PROJECT['requires-python'])
    assert '3.11' in supported and '3.10' not in supported         # tomllib
    assert Version('{}.{}'.format(*sys.version_info)) in supported
    data = PYPROJECT['tool']['setuptools']['package-data']
    assert 'manifest.toml' in data['zoo.weights'] and (ROOT / 'zoo' / 'weights' / 'manifest.toml').is_file()
    # every non-Python file inside the package is package data
    for p in (ROOT / 'zoo').rglob('*'):
        if p.is_file() and p.suffix not in ('.py', '.pyc') and '__pycache__' not in p.parts:
            package = '.'.join(p.parent.relative_to(ROOT).parts)
            assert p.name in data.get(package, []), f'{p.relative_to(ROOT)} is not in [tool.setuptools.package-data]'


def test_requirements_are_ranges_that_hold_the_known_good_pins():
    pins = _constraints()
    for where, req in _all_requirements():
        assert not any(s.operator in ('==', '===') for s in req.specifier), f'{where}: {req} is an exact pin'
        name = canonicalize_name(req.name)
        assert name in pins, f'{where}: {req} has no known-good version in constraints.txt'
        assert req.specifier.contains(pins[name], prereleases=True), \
            f'{where}: constraints.txt pins {name}=={pins[name]}, outside {req}'


def test_patched_libraries_ranges_match_the_patches():
    pins = _constraints()
    declared = {canonicalize_name(r.name): r.specifier for _, r in _all_requirements()}
    for file, dist in PATCHED.items():
        consts = {}
        for node in ast.parse((ROOT / 'zoo' / 'patches' / file).read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        consts[t.id] = node.value.value
        assert declared[dist] == SpecifierSet(consts['SUPPORTED']), \
            f'pyproject.toml declares {dist}{declared[dist]}, zoo/patches/{file} supports {consts["SUPPORTED"]}'
        assert pins[dist] == Version(consts['TESTED']), \
            f'constraints.txt pins {dist}=={pins[dist]}, zoo/patches/{file} was tested with {consts["TESTED"]}'


def test_slow_marker_is_registered_once():
    markers = [m.split(':')[0].strip() for m in PYPROJECT['tool']['pytest']['ini_options'].get('markers', [])]
    assert markers.count('slow') == 1


# ------------------------------------------------------------------------------------------ build and install

LICENSE_WARNING = re.compile(r'License classifiers are deprecated|`?project\.license`? as a TOML table'
                             r'|DeprecationWarning[^\n]*licen[cs]e', re.IGNORECASE)
# what the copy of the repository to build from leaves out
BUILD_IGNORE = shutil.ignore_patterns('.git', '.venv', '__pycache__', '*.egg-info', 'build', 'dist', 'output',
                                      'work_dirs', '.pytest_cache', 'data')

SMOKE = '''
import hashlib, os, sys
from importlib.metadata import distribution
from pathlib import Path

import torch
import timm
import zoo
import zoo.weights

prefix = Path(sys.prefix).resolve()
assert Path(zoo.__file__).resolve().is_relative_to(prefix), f'zoo imported from {zoo.__file__}, not {prefix}'
manifest = Path(zoo.weights.MANIFEST_PATH).resolve()
assert manifest.is_relative_to(prefix) and manifest.is_file(), manifest
entries = zoo.weights.read_manifest()
assert entries and all(e['model'] in zoo.list_models() for e in entries), len(entries)
meta = distribution(sys.argv[2]).metadata
assert meta['License-Expression'] == 'Apache-2.0' and meta['License-File'] == 'LICENSE', meta
assert not [c for c in meta.get_all('Classifier') or [] if c.startswith('License ::')]

torch.manual_seed(0)
trained = zoo.create_model('lsnet_t')
with torch.no_grad():                      # non-trivial BatchNorm statistics, so that folding them matters
    trained.train()(torch.randn(4, 3, 224, 224))
path = os.path.join(sys.argv[1], 'lsnet_t.pth')
torch.save(trained.state_dict(), path)
with open(path, 'rb') as f:
    digest = hashlib.sha256(f.read()).hexdigest()
model = zoo.create_model('lsnet_t')
try:
    zoo.load_checkpoint(model, path, checksum='0' * 64)
    raise AssertionError('a wrong checksum loaded')
except zoo.ChecksumMismatchError:
    pass
zoo.load_checkpoint(model, path, checksum=digest)
for k, v in trained.state_dict().items():
    assert torch.equal(model.state_dict()[k], v), k
x = torch.randn(2, 3, 224, 224)
with torch.no_grad():
    ref = model.eval()(x)
    deploy = zoo.reparameterize(model.eval())
    out = deploy(x)
diff = (out - ref).abs().max().item()
assert diff < 1e-4, diff
assert type(timm.create_model('zoo/lsnet_t')).__module__.startswith('zoo.')
print(f'SMOKE OK {Path(zoo.__file__).resolve()} manifest={len(entries)} diff={diff:.2e}')
'''


def _run(cmd, **kwargs) -> str:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    assert proc.returncode == 0, f'{" ".join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-6000:]}'
    return proc.stdout


@pytest.mark.slow
def test_wheel_and_sdist_build_install_and_work_outside_the_repository(tmp_path):
    pytest.importorskip('build', reason='the `build` frontend (dev extra) builds the sdist and the wheel')
    src, dist, fresh, work = (tmp_path / d for d in ('src', 'dist', 'fresh', 'work'))
    shutil.copytree(ROOT, src, ignore=BUILD_IGNORE)
    # the sdist, then the wheel from the sdist (so the sdist must hold all the wheel needs), each in an
    # isolated env with the [build-system] requirements (setuptools >= 77: the project's venv keeps < 70 for mmcv)
    out = _run([sys.executable, '-m', 'build', '--outdir', str(dist), str(src)])
    assert 'running egg_info' in out or 'running sdist' in out, out[-3000:]   # the backend's output was seen
    assert not LICENSE_WARNING.search(out), LICENSE_WARNING.search(out).group(0)
    (sdist,), (wheel,) = dist.glob('*.tar.gz'), dist.glob('*.whl')
    base = f'{NAME.replace("-", "_")}-{PROJECT["version"]}'
    assert sdist.name == f'{base}.tar.gz' and wheel.name.startswith(f'{base}-py3-none-any')

    with tarfile.open(sdist) as tar:
        names = set(tar.getnames())
    for needed in ('LICENSE', 'pyproject.toml', 'README.md', 'zoo/weights/manifest.toml', 'zoo/__init__.py'):
        assert f'{base}/{needed}' in names, f'{needed} not in {sdist.name}'
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        metadata = whl.read(f'{base}.dist-info/METADATA').decode()
    assert 'zoo/weights/manifest.toml' in names and f'{base}.dist-info/licenses/LICENSE' in names
    assert {n.split('/')[0] for n in names} == {'zoo', f'{base}.dist-info'}, 'the wheel holds more than zoo/'
    assert 'License-Expression: Apache-2.0' in metadata and 'Classifier: License ::' not in metadata

    # a fresh venv that sees the project venv's packages (torch ...) through a .pth line, but not the repository
    _run([sys.executable, '-m', 'venv', '--without-pip', str(fresh)])
    python = fresh / 'bin' / 'python'
    site = Path(_run([str(python), '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))']).strip())
    main_site = {sysconfig.get_path('purelib'), sysconfig.get_path('platlib')}
    (site / '_zoo_test_main_venv.pth').write_text(''.join(f'{p}\n' for p in sorted(main_site)))
    out = _run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '--no-deps', '--no-index',
                str(wheel)])
    assert not LICENSE_WARNING.search(out), LICENSE_WARNING.search(out).group(0)
    assert list(site.glob(f'{base}.dist-info')) and (site / 'zoo' / 'weights' / 'manifest.toml').is_file()
    assert (fresh / 'bin' / 'zoo').is_file()   # the console script

    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'ZOO_MANIFEST', 'PYTHONHOME')}
    (work / 'smoke.py').write_text(SMOKE)
    out = _run([str(python), 'smoke.py', str(work), PROJECT['name']], cwd=work, env=env)
    assert 'SMOKE OK' in out and str(site.resolve()) in out, out
    print(out.strip().splitlines()[-1])
