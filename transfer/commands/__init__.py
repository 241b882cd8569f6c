"""One module per ftrack-transfer subcommand (see transfer/cli.py)."""
