"""The package reads bottom-up: every module imports only from its own layer or the layers below it, and no
two modules import each other, directly or round a loop (docs/design.md names the layers)."""
import ast
import os
from typing import Dict, List, Set

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'zoo')

# bottom to top; a module's layer is its first package under zoo/ ('zoo' itself: the facade, over everything)
LAYERS = ('patches', 'layers', 'weights', 'models', 'deploy', 'measure', ('train', 'mm'), ('zoo', '__main__'))


def layer_of(module: str) -> int:
    parts = module.split('.')
    key = parts[1] if len(parts) > 1 else parts[0]
    for rank, names in enumerate(LAYERS):
        if key in ((names,) if isinstance(names, str) else names):
            return rank
    raise AssertionError(f'{module} is in no layer: add its package to LAYERS and to docs/design.md')


def module_name(root: str, path: str, package: str = 'zoo') -> str:
    rel = os.path.relpath(path, root)[:-len('.py')].split(os.sep)
    if rel[-1] == '__init__':
        rel = rel[:-1]
    return '.'.join([package] + rel)


def zoo_imports(path: str, module: str, is_package: bool, package: str = 'zoo') -> Set[str]:
    """The zoo modules ``path`` imports, anywhere in the file (a function-level import counts as well), and the
    names ``from X import name`` takes from them (a name may be a submodule)."""
    tree = ast.parse(open(path).read(), path)
    here = module.split('.') if is_package else module.split('.')[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split('.')[0] == package)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if target.split('.')[0] != package:
                continue
            found.add(target)
            # `from . import x` / `from .pkg import mod` may name a submodule
            for a in node.names:
                found.add(f'{target}.{a.name}')
    return found


def _modules(root: str, package: str = 'zoo') -> Dict[str, tuple]:
    modules = {}
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith('.py'):
                path = os.path.join(folder, f)
                modules[module_name(root, path, package)] = (path, f == '__init__.py')
    return modules


def import_graph(root: str, package: str = 'zoo') -> Dict[str, Set[str]]:
    modules = _modules(root, package)
    return {m: {t for t in zoo_imports(path, m, is_pkg, package) if t in modules and t != m}
            for m, (path, is_pkg) in modules.items()}


def unresolved_imports(root: str, package: str = 'zoo') -> List[str]:
    """Imports of a zoo module that does not exist (a module moved without its importers following)."""
    modules = _modules(root, package)
    bad = []
    for m, (path, is_pkg) in modules.items():
        names = zoo_imports(path, m, is_pkg, package)
        # `from pkg import name` adds both 'pkg' and 'pkg.name': 'pkg' must be a module, 'name' may be any name in it
        for t in names:
            if t not in modules and t.rpartition('.')[0] not in names:
                bad.append(f'{m} imports {t}, which is no module of {package}')
    return sorted(bad)


def upward_imports(graph: Dict[str, Set[str]]) -> List[str]:
    return sorted(f'{m} (layer {LAYERS[layer_of(m)]}) imports {t} (layer {LAYERS[layer_of(t)]})'
                  for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_imports_only_its_own_layer_or_below():
    graph = import_graph(ROOT)
    assert len(graph) > 40
    assert upward_imports(graph) == []


def test_every_import_names_a_module():
    assert unresolved_imports(ROOT) == []


def test_no_import_cycles():
    assert cycles(import_graph(ROOT)) == []


def _write(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)


@pytest.mark.parametrize('line', ['from ..measure import count_flops', 'from zoo.measure.counting import count_flops',
                                  'def f():\n    from ..measure import counting'])
def test_an_upward_import_is_caught(tmp_path, line):
    """The checks can fail: a weights module that counts FLOPs (as the Hub model card once did) is refused,
    at module level or inside a function."""
    _write(tmp_path, {'zoo/__init__.py': '', 'zoo/weights/__init__.py': '', 'zoo/weights/hub.py': line + '\n',
                      'zoo/measure/__init__.py': '', 'zoo/measure/counting.py': 'import torch\n'})
    found = upward_imports(import_graph(str(tmp_path / 'zoo')))
    assert found and all(f.startswith('zoo.weights.hub (layer weights) imports zoo.measure') for f in found), found


def test_an_import_of_a_moved_module_is_caught(tmp_path):
    _write(tmp_path, {'zoo/__init__.py': '', 'zoo/__main__.py': 'from .benchmark import benchmark\n',
                      'zoo/measure/__init__.py': '', 'zoo/measure/benchmark.py': ''})
    assert unresolved_imports(str(tmp_path / 'zoo')) == ['zoo.__main__ imports zoo.benchmark, which is no module of zoo']


def test_a_cycle_is_caught(tmp_path):
    _write(tmp_path, {'zoo/__init__.py': '', 'zoo/weights/__init__.py': '',
                      'zoo/weights/checkpoint.py': 'from .hub import verify\n',
                      'zoo/weights/hub.py': 'def f():\n    from .checkpoint import read\n'})
    assert cycles(import_graph(str(tmp_path / 'zoo'))) == [['zoo.weights.checkpoint', 'zoo.weights.hub']]
