"""What both command-line tools share; kept for compatibility: see
:mod:`nymi_device.cli_support`."""

from __future__ import annotations

from nymi_device.cli_support import EXIT_BAD_INPUT, EXIT_REFUSED, emit_json, fail, run_app

__all__ = ["EXIT_BAD_INPUT", "EXIT_REFUSED", "emit_json", "fail", "run_app"]
