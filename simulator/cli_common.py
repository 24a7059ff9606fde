"""What both command-line tools share: one-line errors, exit codes and JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from nymi_device.errors import BandError

#: Exit codes: 0 success, 1 the band or server refused, 2 bad input (arguments, fixture, serial).
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_REFUSED) -> typer.Exit:
    """Print ``error: message`` on one line to stderr and return the exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=False))


def run_app(app: typer.Typer, prog_name: str, argv: list[str] | None = None) -> int:
    """Run a typer app so that every error is one line and no traceback escapes."""
    from nymi_device.errors import InvalidInputError

    try:
        result = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return EXIT_REFUSED
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Usage errors of typer's command-line parser (its click exceptions).
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            return EXIT_BAD_INPUT  # the parser has already shown the help
        message = " ".join(str(exc.format_message()).split())
        print(f"error: {message} (see '{prog_name} --help')", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(result) if isinstance(result, int) else 0
