"""CLI commands, one module per area; each attaches its commands to `idcbench.cli.app`."""
