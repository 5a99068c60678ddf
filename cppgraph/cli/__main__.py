"""``python -m cppgraph.cli``: the command line."""

from cppgraph.cli import main

main()
