"""Start-up: the package's names load on first use, and the command line imports little.

``import ksim.cli`` must not import the simulator, pytest (through trio.testing) or rich;
``from ksim import X`` still gives every public name, the same object as its module's.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
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


# Every attrs class of the kernel, each generated method's code in a canonical form (code objects
# do not compare across processes), and whether the run compiled anything it did not keep.
_ATTRS_CODE = """
import json, sys, types
from ksim.clitools import _AttrsCode, keep_attrs_code
if KEEP:
    keep_attrs_code()
import ksim.machine

def canon(c):
    return [c.co_code.hex(), [canon(k) if isinstance(k, types.CodeType) else repr(k)
            for k in c.co_consts], c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars,
            c.co_filename, c.co_qualname, c.co_firstlineno, c.co_linetable.hex(),
            c.co_exceptiontable.hex(), c.co_flags, c.co_argcount, c.co_kwonlyargcount,
            c.co_stacksize]

methods = {}
for name, module in sorted(sys.modules.items()):
    for cls in vars(module).values() if name.startswith("ksim.") else ():
        if isinstance(cls, type) and hasattr(cls, "__attrs_attrs__"):
            for attr, value in sorted(vars(cls).items()):
                code = getattr(value, "__code__", None)
                if code is not None and code.co_filename.startswith("<attrs generated"):
                    methods[f"{cls.__module__}.{cls.__qualname__}.{attr}"] = canon(code)
print(json.dumps([methods, len(_AttrsCode.entries), _AttrsCode.changed]))
"""


def _attrs_run(tmp_path, keep, seed, write=True):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONHASHSEED"] = str(seed)  # frozen classes' __hash__ embed a string hash
    code = f"import sys\nsys.pycache_prefix = {str(tmp_path)!r}\nKEEP = {keep}\n" + _ATTRS_CODE
    proc = subprocess.run([sys.executable] + ([] if write else ["-B"]) + ["-c", code],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _attrs_file(tmp_path):
    return list(tmp_path.rglob("attrs-code.*.marshal"))


def test_kept_attrs_code_is_the_code_attrs_compiles_and_the_next_run_compiles_none(tmp_path):
    fresh, _, _ = _attrs_run(tmp_path, False, 2)
    assert len(fresh) > 100 and not _attrs_file(tmp_path)
    first, kept, changed = _attrs_run(tmp_path, True, 1)
    assert changed and kept > 20 and len(_attrs_file(tmp_path)) == 1
    second, kept_again, changed = _attrs_run(tmp_path, True, 2)
    assert not changed and kept_again == kept  # every class it keeps came from the file
    assert second == fresh  # the same code, frozen classes' __hash__ (this seed's) included
    assert first.keys() == fresh.keys()


def test_kept_attrs_code_that_is_not_readable_is_compiled_again_and_replaced(tmp_path):
    _attrs_run(tmp_path, True, 1)
    [kept] = _attrs_file(tmp_path)
    kept.write_bytes(b"not marshal data")
    fresh, _, _ = _attrs_run(tmp_path, False, 3)
    again, _, changed = _attrs_run(tmp_path, True, 3)
    assert changed and again == fresh and kept.read_bytes() != b"not marshal data"


def test_attrs_code_is_not_written_where_python_writes_no_bytecode(tmp_path):
    _, kept, changed = _attrs_run(tmp_path, True, 1, write=False)
    assert changed and kept > 20 and not _attrs_file(tmp_path)
