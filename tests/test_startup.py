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


def test_a_boot_imports_no_other_commands_machinery_nor_the_plugin_loader():
    loaded = _fresh("import sys\nfrom ksim.cli import main\n"
                    "main(['boot', '-q', '--cat', '/proc/version'])\n"
                    "print(sorted(m for m in ('ksim.stress_cli', 'ksim.stress', 'ksim.compare_cli',"
                    " 'ksim.compare', 'ksim.sweep', 'ksim.scenario.cli', 'ksim.scenario.runner',"
                    " 'ksim.trace', 'ksim.plugins', 'importlib.metadata')"
                    " if m in sys.modules))")
    assert loaded.splitlines()[-1] == "[]"


def test_a_parser_built_for_one_command_parses_and_helps_as_the_whole_one():
    from ksim.cli import BUILTIN_COMMANDS, build_parser

    def commands(parser):
        return next(a for a in parser._actions if a.dest == "command").choices

    whole = commands(build_parser())
    assert list(whole) == list(BUILTIN_COMMANDS)
    for name in BUILTIN_COMMANDS:
        alone = commands(build_parser(only=name))
        assert name in alone and set(alone) <= set(whole)
        assert alone[name].format_help() == whole[name].format_help(), name
        assert alone[name].get_default("handler") is whole[name].get_default("handler")


def test_the_ksim_script_resumes_the_collector_before_the_command_runs():
    # what each command calls once it has imported what it runs
    for argv, module, function in ((["boot", "-q", "--cat", "/proc/version"], "ksim.vclock",
                                    "run_virtual"), (["plugins"], "ksim.plugins", "discover")):
        state = _fresh(f"import gc, sys, {module} as m\nfrom ksim.clitools import pause_gc\n"
                       f"pause_gc()\nprint(gc.isenabled())\nreal = m.{function}\n"
                       f"def spy(*a):\n    print('running', gc.isenabled())\n    return real(*a)\n"
                       f"m.{function} = spy\nfrom ksim.cli import main\nmain({argv!r})\n"
                       "print(gc.isenabled(), gc.get_freeze_count() > 0)")
        lines = state.splitlines()
        assert lines[0] == "False" and "running True" in lines and lines[-1] == "True True", \
            (argv, state)


def test_main_called_from_python_leaves_the_callers_collector_alone():
    state = _fresh("import gc\ngc.disable()\nfrom ksim.cli import main\n"
                   "main(['boot', '-q', '--cat', '/proc/version'])\n"
                   "print(gc.isenabled(), gc.get_freeze_count())")
    assert state.splitlines()[-1] == "False 0"
