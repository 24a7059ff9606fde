"""One module per suite; each defines ``SUITE``."""
