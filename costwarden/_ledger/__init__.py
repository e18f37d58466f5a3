"""The local spend ledger: a SQLite file written by a span exporter and read by the CLI.

Its public names are those of :mod:`costwarden.ledger`, which imports them from the modules here.
"""
