"""`python -m mercato …` is the same as the `mercato` command."""

from mercato.cli import main

main()
