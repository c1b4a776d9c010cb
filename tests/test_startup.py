"""Start-up: the package's names load on first use, and the command line imports little.

``import ksim.cli`` must not import the simulator, pytest (through trio.testing) or rich;
``from ksim import X`` still gives every public name, the same object as its module's.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import ksim

INIT = Path(ksim.__file__)


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_the_command_line_imports_no_simulator_pytest_or_rich():
    loaded = _fresh("import sys, ksim.cli\n"
                    "print(sorted(m for m in ('pytest', 'rich', 'trio', 'attrs', 'ksim.kernel',"
                    " 'ksim.machine', 'ruamel.yaml', 'cattrs', 'importlib.metadata')"
                    " if m in sys.modules))")
    assert loaded == "[]"


def test_a_boot_does_not_import_pytest_or_rich():
    loaded = _fresh("import sys\nfrom ksim.cli import main\n"
                    "main(['boot', '-q', '--cat', '/proc/version'])\n"
                    "print(sorted(m for m in ('pytest', 'rich', 'ruamel.yaml', 'cattrs')"
                    " if m in sys.modules))")
    assert loaded.splitlines()[-1] == "[]"


def test_every_public_name_resolves_to_its_modules_object():
    for name in ksim.__all__:
        if name == "__version__":
            continue
        value = getattr(ksim, name)
        module = importlib.import_module(ksim._ORIGIN[name])
        assert value is getattr(module, name), name
    assert set(ksim._ORIGIN) | {"__version__"} == set(ksim.__all__)


def test_the_type_checkers_imports_match_the_lazy_table():
    tree = ast.parse(INIT.read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(n.test))
    imported = {alias.name: node.module for node in block.body
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert imported == ksim._ORIGIN


def test_names_that_are_also_submodules_stay_the_functions():
    value = _fresh("import ksim.printk, ksim.panic, ksim.current, ksim.setup\n"
                   "import ksim\nfrom ksim import printk, panic, current, setup\n"
                   "print(all(callable(f) and not isinstance(f, type(ksim)) for f in "
                   "(printk, panic, current, setup, ksim.printk, ksim.panic)))")
    assert value == "True"


def test_star_import_brings_the_public_names_and_no_submodule():
    names = _fresh("from ksim import *\nimport types\n"
                   "print(sorted(k for k, v in dict(globals()).items() "
                   "if isinstance(v, types.ModuleType) and k not in ('types', '__builtins__')))")
    assert names == "[]"
