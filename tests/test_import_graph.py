"""No import cycle among the modules of ``ls_extensions``, read with ``ast``: top-level and function-level imports.

A module importing ``from ls_extensions.a import b`` depends on ``ls_extensions.a.b`` when that is a module,
else on ``ls_extensions.a``. Imports inside functions count too: a lazy import hides a cycle, it does not
remove it. Apps talk the other way by Django signals (``retraining.events``, ``scoring.events``).
"""

import ast
from pathlib import Path

import ls_extensions

ROOT = Path(ls_extensions.__file__).parent


def _modules():
    found = {}
    for path in ROOT.rglob('*.py'):
        if 'migrations' in path.parts:
            continue
        parts = ('ls_extensions', *path.relative_to(ROOT).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        found['.'.join(parts)] = path
    return found


def import_graph():
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f'{node.module}.{alias.name}' for alias in node.names]
                targets = [t if t in modules else node.module for t in targets]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name and t != 'ls_extensions'}
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in graph[node]:
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert 'ls_extensions.scoring.services' in graph['ls_extensions.scoring.signals']
    assert 'ls_extensions.retraining.events' in graph['ls_extensions.scoring.signals']


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert cycles(graph) == []
    assert not any(m.startswith('ls_extensions.scoring') for m in graph['ls_extensions.retraining.steps'])
    assert 'ls_extensions.video.tasks' not in graph['ls_extensions.video.conversions']  # published by name
