"""``python -m ksim`` and the ``ksim`` console script.

The entry point imports the command line inside a ``try``: a Ctrl-C that lands while the
interpreter is still importing is one line and exit status 130, not a traceback.  The
garbage collector waits until the command has imported its modules
(:func:`ksim.clitools.pause_gc`).
"""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from ksim.clitools import pause_gc
        pause_gc()
        from ksim.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("ksim: interrupted\n")
        sys.exit(130)
    sys.exit(main())


if __name__ == "__main__":
    run()
