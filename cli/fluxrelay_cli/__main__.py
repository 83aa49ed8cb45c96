"""`python -m fluxrelay_cli`: the same as the `fluxrelay` console script."""

from fluxrelay_cli.app import main

main()
