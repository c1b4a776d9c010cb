from ksim.cli import run

run()
