"""``python -m kbp_notebook.sandbox``: the same as ``kbp sandbox``."""

import sys

from kbp_notebook.sandbox.cli import cli_main

sys.exit(cli_main(sys.argv[1:]))
