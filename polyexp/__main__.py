from polyexp.app import cli

cli()
