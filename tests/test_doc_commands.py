"""Every shell command the documentation gives is checked, so that a command a reader copies works.

The commands come from README.md and docs/*.md (fenced ``bash`` / ``sh`` / ``shell`` / ``console`` blocks,
untagged and indented blocks, inline code spans such as `python tools/train.py ...`) and from the usage lines
in the docstrings of tools/*.py. Nothing is run: each command is parsed by the argument parser of the tool
it calls (an argparse error fails the test with the command and where it is written), the model names in it
must be registered zoo models (or timm models, for the timm peers), the repository files it names
(configs/..., docs/..., tools/...) must exist, and the extras of a ``pip install .[extra]`` must be in
pyproject.toml. A command word the checker does not know fails too, so that a new kind of command gets a
check (or a place in ``UNCHECKED``).
"""
import argparse
import ast
import contextlib
import dataclasses
import glob
import importlib
import io
import os
import re
import shlex
import sys
import tomllib
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pytest
import timm

import zoo

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
TOOLS = os.path.join(ROOT, 'tools')
sys.path.insert(0, TOOLS)

DOC_FILES = ['README.md'] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
TOOL_FILES = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(TOOLS, '*.py')))

# command words that are shown but not checked; keep this short: anything else gets a check below
UNCHECKED = {'cd', 'git', 'export', 'mkdir', 'ls', 'echo'}
PYTHONS = {'python', 'python3', 'python3.11', '.venv/bin/python', '.venv/bin/python3'}
TORCHRUNS = {'torchrun', '.venv/bin/torchrun'}
PIPS = {'pip', 'pip3', '.venv/bin/pip'}
SHELLS = {'bash', 'sh'}
ENV_ASSIGNMENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=')
# the first word of a line (after a prompt and variable assignments) that makes it a command in an untagged or
# indented block, a docstring or an inline code span
_WORDS = '|'.join(re.escape(w) for w in sorted(PYTHONS | TORCHRUNS | PIPS | SHELLS | UNCHECKED, key=len,
                                                     reverse=True))
COMMAND_LINE = re.compile(rf'^(?:\$\s+)?(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:{_WORDS})(?:\s|$)')
# inline spans: a command of these words with at least one argument, or a bare `tools/<tool>.py ARGS`
_INLINE_WORDS = '|'.join(re.escape(w) for w in sorted(PYTHONS | TORCHRUNS | PIPS | SHELLS, key=len, reverse=True))
INLINE_COMMAND = re.compile(rf'^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:{_INLINE_WORDS})\s+\S')
INLINE_TOOL = re.compile(r'^tools/\w+\.py\s+\S')
SHELL_LANGS = {'bash', 'sh', 'shell', 'console', 'zsh'}
FENCE = re.compile(r'^\s{0,3}(`{3,}|~{3,})\s*([^\s`]*)')
SEPARATORS = {'&&', '||', ';', '|'}
PLACEHOLDER = re.compile(r'<[^<>\s]+>|\.\.\.|^[A-Z][A-Z0-9_]+$')
# repository folders whose files a command may name as inputs: they must exist
SHIPPED = ('configs/', 'docs/', 'tools/', 'tests/', 'zoo/')


@dataclasses.dataclass
class Command:
    where: str          # path:line
    text: str           # the command as written (continuations joined, prompt and comment removed)
    lines: Tuple[int, ...] = ()

    def __str__(self):
        return f'{self.where}: `{self.text}`'


# ---------------------------------------------------------------------------------------------- extraction


def _logical_lines(lines: Sequence[Tuple[int, str]]) -> List[Tuple[Tuple[int, ...], str]]:
    """Join backslash continuations: [((line numbers), text)]."""
    out, buf, nums = [], [], []
    for num, line in lines:
        stripped = line.rstrip()
        nums.append(num)
        if stripped.endswith('\\'):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped.strip())
        out.append((tuple(nums), ' '.join(b for b in buf if b)))
        buf, nums = [], []
    if buf:
        out.append((tuple(nums), ' '.join(b for b in buf if b)))
    return out


def _uncomment(text: str) -> str:
    """The text before a shell comment: a ``#`` at a word's start, outside quotes."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in '\'"':
            quote = ch
        elif ch == '#' and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text


def _strip(text: str) -> str:
    """The command without its ``$ `` prompt and its trailing comment, its words re-quoted where needed."""
    words = _split(_uncomment(re.sub(r'^\$\s+', '', text.strip())))
    return ' '.join(shlex.quote(w) if w not in SEPARATORS and re.search(r'[\s*?\[\]<>|&;\'"]', w) else w
                    for w in words)


def _split(text: str) -> List[str]:
    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split = True
    lex.commenters = ''
    return list(lex)


def _commands_in_lines(path: str, lines: Sequence[Tuple[int, str]], every_line: bool,
                       console: bool = False) -> List[Command]:
    """Commands in a block of (line number, text) lines: every line of a shell block (only its ``$ `` lines in
    a console block), else only the lines that start like a command, with their continuations."""
    found = []
    for nums, text in _logical_lines(lines):
        if not text or text.startswith('#'):
            continue
        if console and not text.startswith('$ '):
            continue
        if not every_line and not COMMAND_LINE.match(text):
            continue
        command = _strip(text)
        if command:
            found.append(Command(f'{path}:{nums[0]}', command, nums))
    return found


def extract_markdown(path: str, text: str) -> List[Command]:
    """Commands in a Markdown file: fenced and indented code blocks, then inline code spans."""
    lines = text.splitlines()
    found: List[Command] = []
    prose = list(lines)  # the text with code blocks blanked, for the inline spans
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            fence, lang = m.group(1), m.group(2).lower()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence):
                j += 1
            block = [(n + 1, lines[n]) for n in range(i + 1, j)]
            if lang in SHELL_LANGS:
                found += _commands_in_lines(path, block, every_line=True, console=lang == 'console')
            elif lang in ('', 'text', 'none'):
                found += _commands_in_lines(path, block, every_line=False)
            for n in range(i, min(j + 1, len(lines))):
                prose[n] = ''
            i = j + 1
            continue
        # an indented code block: 4+ spaces after a blank line, outside a list
        if lines[i].startswith('    ') and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith('    ') or not lines[j].strip()):
                j += 1
            block = [(n + 1, lines[n][4:]) for n in range(i, j)]
            found += _commands_in_lines(path, block, every_line=False)
            for n in range(i, j):
                prose[n] = ''
            i = j
            continue
        i += 1
    # inline code spans (they may run over a line break, not over a blank line)
    body = '\n'.join(prose)
    for m in re.finditer(r'(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)', body, re.S):
        span = m.group(2)
        if '\n\n' in span:
            continue
        span = ' '.join(span.split())
        if INLINE_TOOL.match(span):
            span = 'python ' + span
        elif not INLINE_COMMAND.match(span):
            continue
        first = body.count('\n', 0, m.start(2)) + 1
        found.append(Command(f'{path}:{first}', _strip(span), tuple(range(first, first + m.group(2).count('\n') + 1))))
    return sorted(found, key=lambda c: c.lines)


def extract_docstring(path: str, source: str) -> List[Command]:
    """The usage lines in a tool's module docstring."""
    tree = ast.parse(source)
    if not (tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant)
            and isinstance(tree.body[0].value.value, str)):
        return []
    node = tree.body[0].value
    lines = [(node.lineno + k, line) for k, line in enumerate(node.value.split('\n'))]
    return _commands_in_lines(path, lines, every_line=False)


def _read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding='utf-8') as f:
        return f.read()


def documented_commands() -> List[Command]:
    commands = []
    for rel in DOC_FILES:
        commands += extract_markdown(rel, _read(rel))
    for rel in TOOL_FILES:
        commands += extract_docstring(rel, _read(rel))
    return commands


COMMANDS = documented_commands()


# ------------------------------------------------------------------------------------------------ checking


class CommandError(AssertionError):
    pass


def _fail(cmd: Command, why: str):
    raise CommandError(f'{cmd}\n  {why}')


def _placeholder(word: str) -> bool:
    return bool(PLACEHOLDER.search(word))


def _simple_commands(text: str) -> List[List[str]]:
    """Split at ``&&``, ``||``, ``;`` and ``|``; drop ``[`` ``]`` around optional arguments."""
    out, cur, optional = [], [], False
    for word in _split(text):
        if word in SEPARATORS:
            out.append(cur)
            cur = []
            continue
        if word.endswith(';'):
            cur.append(word[:-1])
            out.append(cur)
            cur = []
            continue
        if word.startswith('[-'):
            word, optional = word[1:], True
        if optional and word.endswith(']'):
            word, optional = word[:-1], False
        cur.append(word)
    out.append(cur)
    return [c for c in out if c]


def _parse(cmd: Command, parse: Callable[[List[str]], argparse.Namespace], args: List[str],
           what: str, elide: bool = True) -> Optional[argparse.Namespace]:
    """Run an argparse parse; an error fails with the command. ``...`` stands for elided arguments, so a
    missing required argument is allowed then (and the namespace is not returned)."""
    elided = elide and '...' in args
    if elided:
        args = [a for a in args if a != '...']
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            ns = parse(args)
    except SystemExit as e:
        message = err.getvalue().strip().splitlines()
        if e.code in (0, None):
            return None
        if elided and message and 'the following arguments are required' in message[-1]:
            return None
        _fail(cmd, f'{what} rejects {args}: {message[-1] if message else e}')
    return None if elided else ns


def _check_models(cmd: Command, names: Sequence[str], exact: bool = False):
    """Zoo model names or fnmatch patterns must name registered models."""
    for name in names:
        if _placeholder(name):
            continue
        found = zoo.list_models(name)
        if not found or (exact and name not in found):
            _fail(cmd, f'{name!r} names no registered zoo model')


def _check_timm_models(cmd: Command, names: Sequence[str]):
    for name in names:
        if not _placeholder(name) and not timm.list_models(name):
            _fail(cmd, f'{name!r} names no timm model')


def _check_paths(cmd: Command, words: Sequence[str]):
    """Repository files a command names (as a word or an ``--opt=value``) must exist."""
    for word in words:
        for value in (word, word.split('=', 1)[-1]):
            value = value.rstrip(',')
            if value.startswith(SHIPPED) and not _placeholder(value) and not any(c in value for c in '*?'):
                if not os.path.exists(os.path.join(ROOT, value)):
                    _fail(cmd, f'{value} does not exist in the repository')


def _tool(name: str):
    return importlib.import_module(name)


def _mm_runner():
    pytest.importorskip('mmengine', reason='the mm extra is not installed')
    return importlib.import_module('zoo.mm.runner')


def _check_benchmark(cmd, args):
    ns = _parse(cmd, _tool('benchmark').parse_args, args, 'tools/benchmark.py')
    if ns is not None:
        if not ns.large_kernel:
            _check_models(cmd, ns.models)
        _check_timm_models(cmd, ns.compare or [])


def _check_convert(cmd, args):
    ns = _parse(cmd, _tool('convert_checkpoint').parse_args, args, 'tools/convert_checkpoint.py')
    if ns is not None:
        _check_models(cmd, [ns.model], exact=True)
        if ns.tag and not _placeholder(ns.model):
            tags = {t.split('.', 1)[1] for t in timm.list_pretrained(zoo.timm_name(ns.model) + '.*')}
            if ns.tag not in tags:
                _fail(cmd, f'{ns.model} has no pretrained tag {ns.tag!r} (it has {sorted(tags)})')


def _check_export(cmd, args):
    ns = _parse(cmd, _tool('export').build_parser().parse_args, args, 'tools/export.py')
    if ns is not None:
        _check_models(cmd, ns.model)


def _check_validate(cmd, args):
    ns = _parse(cmd, _tool('validate').build_parser().parse_args, args, 'tools/validate.py')
    if ns is not None and ns.model:
        _check_models(cmd, [ns.model], exact=True)


def _check_quantize(cmd, args):
    ns = _parse(cmd, _tool('quantize').build_parser().parse_args, args, 'tools/quantize.py')
    if ns is not None and ns.model:
        _check_models(cmd, [ns.model], exact=True)


def _check_predict(cmd, args):
    ns = _parse(cmd, _tool('predict').build_parser().parse_args, args, 'tools/predict.py')
    if ns is not None and ns.model:
        _check_models(cmd, [ns.model], exact=True)


def _check_train(cmd, args):
    # the recipe named by --config sets the defaults (and must hold only known options)
    ns = _parse(cmd, _tool('train').parse_train_args, args, 'tools/train.py')
    if ns is not None:
        _check_models(cmd, [ns.model], exact=True)


def _check_push(cmd, args):
    ns = _parse(cmd, _tool('push_to_hub').build_parser().parse_args, args, 'tools/push_to_hub.py')
    if ns is not None and not re.fullmatch(r'[\w.-]+/[\w.-]+', ns.repo_id):
        _fail(cmd, f'{ns.repo_id!r} is not a Hub repo id <org>/<name>')


def _check_mm(which):
    def check(cmd, args):
        runner = _mm_runner()
        parser = runner.train_parser() if which == 'train' else runner.test_parser()
        _parse(cmd, parser.parse_args, args, f'tools/mm_{which}.py')
    return check


TOOL_CHECKS: Dict[str, Callable[[Command, List[str]], None]] = {
    'benchmark.py': _check_benchmark,
    'convert_checkpoint.py': _check_convert,
    'export.py': _check_export,
    'quantize.py': _check_quantize,
    'make_digits.py': lambda cmd, args: _parse(cmd, _tool('make_digits').build_parser().parse_args, args,
                                               'tools/make_digits.py'),
    'make_docs.py': lambda cmd, args: _parse(cmd, _tool('make_docs').parse_args, args, 'tools/make_docs.py'),
    'make_shapes.py': lambda cmd, args: _parse(cmd, _tool('make_shapes').build_parser().parse_args, args,
                                               'tools/make_shapes.py'),
    'mm_predict.py': lambda cmd, args: _parse(cmd, _tool('mm_predict').build_parser().parse_args, args,
                                              'tools/mm_predict.py'),
    'mm_test.py': _check_mm('test'),
    'mm_train.py': _check_mm('train'),
    'predict.py': _check_predict,
    'push_to_hub.py': _check_push,
    'train.py': _check_train,
    'validate.py': _check_validate,
}


class _Parsed(Exception):
    def __init__(self, namespace):
        self.namespace = namespace


def _zoo_cli(argv: List[str]) -> argparse.Namespace:
    """``python -m zoo ARGS``: run zoo.__main__.main only as far as its argument parse."""
    main = importlib.import_module('zoo.__main__').main
    real = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        raise _Parsed(real(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse_only
    try:
        main(argv)
    except _Parsed as parsed:
        return parsed.namespace
    finally:
        argparse.ArgumentParser.parse_args = real
    raise AssertionError('zoo.__main__.main did not parse its arguments')


def check_zoo_cli(cmd, args):
    try:
        importlib.import_module('zoo.__main__')
    except ImportError as e:
        _fail(cmd, f'python -m zoo cannot start: {type(e).__name__}: {e}')
    ns = _parse(cmd, _zoo_cli, args, 'python -m zoo')
    if ns is not None:
        _check_models(cmd, ns.models)


def check_tool(cmd, script, args):
    if not re.fullmatch(r'tools/\w+\.py', script):
        _fail(cmd, f'{script}: only tools/<tool>.py scripts are checked')
    if not os.path.isfile(os.path.join(ROOT, script)):
        _fail(cmd, f'{script} does not exist')
    check = TOOL_CHECKS.get(os.path.basename(script))
    if check is None:
        _fail(cmd, f'no check for {script}: add its parser to TOOL_CHECKS in {os.path.relpath(__file__, ROOT)}')
    check(cmd, args)


def check_torchrun(cmd, args):
    from torch.distributed.run import get_args_parser
    ns = _parse(cmd, get_args_parser().parse_args, args, 'torchrun', elide=False)
    if ns.module or ns.no_python:
        _fail(cmd, 'torchrun -m / --no-python: not checked')
    check_tool(cmd, ns.training_script, ns.training_script_args)


def _pyproject() -> dict:
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        return tomllib.load(f)['project']


def _extras() -> set:
    return set(_pyproject().get('optional-dependencies', {}))


def check_extras(cmd, extras: str):
    if _placeholder(extras):
        return
    for extra in filter(None, (e.strip() for e in extras.split(','))):
        if extra not in _extras():
            _fail(cmd, f'extra {extra!r} is not in pyproject.toml [project.optional-dependencies] '
                       f'({", ".join(sorted(_extras()))})')


PIP_FLAGS = {'-e', '--editable', '-q', '--quiet', '-U', '--upgrade', '--no-build-isolation', '--no-deps',
             '--pre', '-v'}
PIP_FILE_OPTIONS = {'-c', '--constraint', '-r', '--requirement'}   # followed by a file
REQUIREMENT = re.compile(r'([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?\s*((?:[<>=!~]=?|===)\s*[\w.*+!-]+\s*,?\s*)*')


def _normal(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def check_pip(cmd, args):
    """``pip install``: known options, files that exist, requirements pip can read, and the extras of this
    project (``.[extra]`` or ``<project name>[extra]``) in pyproject.toml."""
    if not args or args[0] != 'install':
        _fail(cmd, 'only `pip install` is checked')
    words = iter(args[1:])
    for word in words:
        if word in PIP_FILE_OPTIONS:
            path = next(words, '')
            if not os.path.isfile(os.path.join(ROOT, path)):
                _fail(cmd, f'{word} {path}: no such file in the repository')
            continue
        if word.startswith('-'):
            if word not in PIP_FLAGS:
                _fail(cmd, f'pip install option {word} is not one the checker knows (PIP_FLAGS)')
            continue
        local = re.fullmatch(r'\.(?:\[([^\]]*)\])?', word)
        if local:
            check_extras(cmd, local.group(1) or '')
            continue
        req = REQUIREMENT.fullmatch(word)
        if not req:
            _fail(cmd, f'{word!r} is not a requirement pip understands')
        if req.group(2) is not None and _normal(req.group(1)) == _normal(_pyproject()['name']):
            check_extras(cmd, req.group(2))


def check_pytest(cmd, args, pytestconfig):
    """``bash tools/test.sh ARGS`` passes ARGS to pytest: they must be pytest options (with -m naming
    registered markers) and existing test paths."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns, unknown = pytestconfig._parser.parse_known_and_unknown_args([a for a in args])
    except (SystemExit, pytest.UsageError) as e:
        _fail(cmd, f'pytest rejects {args}: {err.getvalue().strip() or e}')
    if unknown:
        _fail(cmd, f'pytest does not know {unknown}')
    markers = {line.split(':')[0].split('(')[0].strip() for line in pytestconfig.getini('markers')}
    for word in re.findall(r'[A-Za-z_]\w*', getattr(ns, 'markexpr', '') or ''):
        if word not in ('and', 'or', 'not') and word not in markers:
            _fail(cmd, f'-m names the marker {word!r}, which is not registered')
    for path in getattr(ns, 'file_or_dir', None) or []:
        if not os.path.exists(os.path.join(ROOT, path.split('::')[0])):
            _fail(cmd, f'{path} does not exist')


def check_shell_script(cmd, args, pytestconfig):
    if not args:
        _fail(cmd, 'no script')
    script, rest = args[0], args[1:]
    if not os.path.isfile(os.path.join(ROOT, script)):
        _fail(cmd, f'{script} does not exist')
    if script == 'tools/main.sh':        # exec .venv/bin/python -m zoo "$@"
        check_zoo_cli(cmd, rest)
    elif script == 'tools/test.sh':      # exec .venv/bin/python -m pytest -q -n 2 "$@"
        check_pytest(cmd, rest, pytestconfig)
    elif script == 'tools/venv.sh':      # bash tools/venv.sh [extras]
        if len(rest) > 1:
            _fail(cmd, 'tools/venv.sh takes one argument, the comma-separated extras')
        check_extras(cmd, rest[0] if rest else '')
    elif script == 'tools/gpu_check.sh':  # its commands: tests/test_benchmark.py checks them
        if rest:
            _fail(cmd, 'tools/gpu_check.sh takes no arguments (PYTHON= and OUT_DIR= in its environment)')
    else:
        _fail(cmd, f'no check for {script}: add one to check_shell_script')


def check_command(cmd: Command, pytestconfig) -> None:
    for words in _simple_commands(cmd.text):
        while words and ENV_ASSIGNMENT.match(words[0]):
            words = words[1:]
        if not words:
            continue
        _check_paths(cmd, words[1:])
        word, args = words[0], words[1:]
        if word in UNCHECKED:
            continue
        if word in PYTHONS:
            if args[:1] == ['-m'] and len(args) > 1:
                module, rest = args[1], args[2:]
                if module == 'zoo':
                    check_zoo_cli(cmd, rest)
                elif module == 'torch.distributed.run':
                    check_torchrun(cmd, rest)
                elif module == 'pytest':
                    check_pytest(cmd, rest, pytestconfig)
                elif module == 'pip':
                    check_pip(cmd, rest)
                else:
                    _fail(cmd, f'python -m {module}: no check for this module')
            elif args and args[0].endswith('.py'):
                check_tool(cmd, args[0], args[1:])
            else:
                _fail(cmd, 'python without a script or a known -m module')
        elif word in TORCHRUNS:
            check_torchrun(cmd, args)
        elif word in PIPS:
            check_pip(cmd, args)
        elif word in SHELLS:
            check_shell_script(cmd, args, pytestconfig)
        else:
            _fail(cmd, f'unknown command {word!r}: give it a check in {os.path.relpath(__file__, ROOT)} '
                       f'(or add it to UNCHECKED)')


# --------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize('cmd', COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command(cmd, pytestconfig):
    check_command(cmd, pytestconfig)


def test_commands_are_found_in_the_docs_and_tools():
    per_file = {}
    for c in COMMANDS:
        per_file.setdefault(c.where.split(':')[0], []).append(c)
    for rel in ('README.md', 'docs/getting-started.md', 'docs/benchmarks.md', 'docs/training.md',
                'docs/downstream.md', 'docs/export.md', 'docs/hub.md', 'tools/benchmark.py', 'tools/train.py'):
        assert per_file.get(rel), f'no command found in {rel}'
    # every tool a documented command could call has a check
    for rel in TOOL_FILES:
        assert os.path.basename(rel) in TOOL_CHECKS, f'{rel} has no entry in TOOL_CHECKS'


def test_no_command_escapes_the_extraction():
    """Every line of the docs that starts a tool command (python / bash / torchrun ... tools/X) belongs to
    an extracted command, so a command in a form the extractor misses gets noticed."""
    covered = {}
    for c in COMMANDS:
        covered.setdefault(c.where.split(':')[0], set()).update(c.lines)
    pattern = re.compile(r'(?:^|[\s`$(])(?:\S*python3?|\S*torchrun|bash)[ \t][^`\n]*?tools/\w+\.(?:py|sh)\b', re.M)
    missed = []
    for rel in DOC_FILES + TOOL_FILES:
        text = _read(rel)
        if rel.endswith('.py'):
            tree = ast.parse(text)
            doc = tree.body[0].value if tree.body and isinstance(tree.body[0], ast.Expr) else None
            if doc is None:
                continue
            text, offset = doc.value, doc.lineno - 1
        else:
            offset = 0
        for m in pattern.finditer(text):
            line = offset + text.count('\n', 0, m.start()) + 1 + (m.group(0)[0] == '\n')
            if line not in covered.get(rel, ()):
                missed.append(f'{rel}:{line}: {m.group(0).strip()}')
    assert not missed, 'commands the extractor does not see:\n' + '\n'.join(missed)


SAMPLE = r'''
Text with `python tools/benchmark.py lsnet_t --forms
deploy` over a line break, ``bash tools/venv.sh dev`` and `tools/export.py --model lsnet_t`; not `tools/export.py`.

```bash
# a comment
CUDA_VISIBLE_DEVICES=0 python tools/benchmark.py lsnet_t \
    --forms train deploy   # trailing comment
cd /tmp && python tools/make_shapes.py --size 64
```

```console
$ python tools/make_digits.py data/digits --size 32
data/digits: 1347 train / 450 val images
```

```
python tools/make_docs.py --check
some output line
```

```python
import os  # python code, not a command
```

    torchrun --nproc_per_node 2 tools/train.py --config configs/digits/lsnet_t.yaml
'''


def test_extraction_of_shell_syntax():
    got = [(c.where, c.text) for c in extract_markdown('x.md', SAMPLE)]
    assert got == [
        ('x.md:2', 'python tools/benchmark.py lsnet_t --forms deploy'),
        ('x.md:3', 'bash tools/venv.sh dev'),
        ('x.md:3', 'python tools/export.py --model lsnet_t'),
        ('x.md:7', 'CUDA_VISIBLE_DEVICES=0 python tools/benchmark.py lsnet_t --forms train deploy'),
        ('x.md:9', 'cd /tmp && python tools/make_shapes.py --size 64'),
        ('x.md:13', 'python tools/make_digits.py data/digits --size 32'),
        ('x.md:18', 'python tools/make_docs.py --check'),
        ('x.md:26', 'torchrun --nproc_per_node 2 tools/train.py --config configs/digits/lsnet_t.yaml'),
    ]
    assert _simple_commands("cd /tmp && A=1 python x.py '*' [--deploy] [--token hf_...]") == [
        ['cd', '/tmp'], ['A=1', 'python', 'x.py', '*', '--deploy', '--token', 'hf_...']]


@pytest.mark.parametrize('text, why', [
    ('python tools/export.py lsnet_t', 'unrecognized arguments'),
    ('python tools/benchmark.py no_such_model', 'no registered zoo model'),
    ('python tools/benchmark.py lsnet_t --compare no_such_timm_model', 'no timm model'),
    ('python tools/train.py --config configs/no_such.yaml', 'does not exist'),
    ('python tools/no_such_tool.py', 'does not exist'),
    ('pip install -e .[no_such_extra]', 'not in pyproject.toml'),
    ('bash tools/venv.sh dev,no_such_extra', 'not in pyproject.toml'),
    ('bash tools/test.sh -m "not no_such_marker"', 'not registered'),
    ('bash tools/test.sh --no-such-flag', 'pytest'),
    ('python tools/convert_checkpoint.py lsnet_t f.pth out --tag no_such_tag', 'no pretrained tag'),
    ('python tools/validate.py --model lsnet_t', 'required'),
    ('torchrun --nproc_per_node 2 tools/train.py --no-such-option', 'rejects'),
    ('git clone x && cd x && python tools/export.py --model no_such_model', 'no registered zoo model'),
    ('python tools/mm_train.py configs/shapes/upernet_lsnet_t_shapes.py --no-such-option', 'rejects'),
    ('frobnicate --now', 'unknown command'),
])
def test_a_wrong_command_fails(text, why, pytestconfig):
    with pytest.raises(CommandError, match=why):
        check_command(Command('x.md:1', text), pytestconfig)
