"""What both command-line tools share: one-line errors, exit codes, JSON and human output,
logging (with the raw-traffic level), and ``--version``.

Everything here is cheap to import: the tools load it before they know which command runs, so
it must not pull in a transport, the simulator or the enterprise server.

Errors: :func:`run_app` runs a typer app so that anything a user can cause ends in exactly one
``error: …`` line on stderr (what failed, why, what to do next) and a non-zero exit code — never
a traceback. Errors of the stack are :class:`~nymi_device.errors.BandError`; errors of the
libraries underneath (a database driver, pcsc-lite, D-Bus, an HTTP client) are explained by
:func:`explain`, which recognises them by name, without importing those libraries.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from nymi_device.errors import BandError, InvalidInputError
from nymi_device.protocol import TRAFFIC

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_REFUSED",
    "LOG_LEVELS",
    "TRAFFIC",
    "LogFileOption",
    "LogLevelOption",
    "VerboseOption",
    "VersionOption",
    "configure_logging",
    "emit_json",
    "explain",
    "fail",
    "human",
    "plain_help",
    "reset_logging",
    "run_app",
    "version_text",
]

#: Exit codes: 0 success, 1 the band or server refused (or could not be reached), 2 bad input
#: (arguments, fixture, serial, target), 70 a defect of the tool itself.
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70

#: ``--log-level`` names, most verbose first. ``traffic`` shows every frame, APDU and datagram.
LOG_LEVELS = {"traffic": TRAFFIC, "debug": logging.DEBUG, "info": logging.INFO,
              "warning": logging.WARNING, "error": logging.ERROR}

logging.addLevelName(TRAFFIC, "TRAFFIC")
logger = logging.getLogger("nymi_device.cli")


def fail(message: str, code: int = EXIT_REFUSED) -> typer.Exit:
    """Print ``error: message`` on one line to stderr and return the exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def emit_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (bytes as base64url, other objects as text)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=_json_default, allow_nan=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        from nymi_device.protocol.text import b64url

        return b64url(bytes(value))
    return str(value)


def plain_help(app: typer.Typer) -> typer.Typer:
    """Have ``app`` and its sub-apps print plain help text, as other device tools do (and
    without loading typer's rich help renderer, which costs a noticeable start-up)."""
    app.rich_markup_mode = None
    for group in app.registered_groups:
        if group.typer_instance is not None:
            plain_help(group.typer_instance)
    return app


# -- human output --------------------------------------------------------------------------------

#: What an absent value looks like on screen.
NOTHING = "—"


def human(value: Any) -> str:
    """A value as a person reads it: yes/no, ``—`` for nothing, lists joined by commas,
    mappings as ``key: value``, bytes as base64url; never a Python repr."""
    if value is None:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, bytes | bytearray | memoryview):
        from nymi_device.protocol.text import b64url

        return b64url(bytes(value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        if not value:
            return NOTHING
        return ", ".join(f"{str(k).replace('_', ' ')}: {human(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return ", ".join(human(v) for v in items) if items else NOTHING
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return str(value.value)  # an enum member: its wire name
    return str(value)


# -- logging -------------------------------------------------------------------------------------

VerboseOption = Annotated[int, typer.Option(
    "--verbose", "-v", count=True,
    help="More log output on stderr: -v info, -vv debug, -vvv every frame (traffic).")]
LogLevelOption = Annotated[str | None, typer.Option(
    "--log-level", envvar="NYMI_LOG_LEVEL", metavar="LEVEL",
    help="Log level: traffic (every APDU, CTAP frame and management frame as hex), debug, "
    "info, warning, error.")]
LogFileOption = Annotated[Path | None, typer.Option(
    "--log-file", envvar="NYMI_LOG_FILE",
    help="Write the log to this file (appended) instead of stderr.")]


def _version_callback(ctx: typer.Context, value: bool) -> None:
    if value:
        print(version_text(ctx.find_root().info_name or "nymi-band"))
        raise typer.Exit(0)


VersionOption = Annotated[bool, typer.Option(
    "--version", is_eager=True, callback=_version_callback,
    help="Show the versions of this tool, its firmware fixtures and the libraries it drives, "
    "then exit.")]


class _Formatter(logging.Formatter):
    """Names the raw-traffic level TRAFFIC, whatever a library registered for level 5."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == TRAFFIC:
            record.levelname = "TRAFFIC"
        return super().format(record)


_HANDLER = "nymi-cli"
_saved_levels: list[int] = []


def reset_logging() -> None:
    """Remove what :func:`configure_logging` installed (the tools call it when a command ends,
    so running them in-process leaves the caller's logging as it was)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)
        old.close()
    if _saved_levels:
        root.setLevel(_saved_levels[0])
        _saved_levels.clear()


def configure_logging(verbose: int = 0, level: str | None = None,
                      log_file: Path | None = None) -> int:
    """Send the stack's log to stderr (or ``log_file``) at the chosen level; returns the level.

    ``level`` wins over ``verbose``. Without either, only warnings and errors are logged.
    :raises InvalidInputError: for an unknown level or a log file that cannot be opened.
    """
    if level is not None:
        chosen = LOG_LEVELS.get(level.lower())
        if chosen is None:
            raise InvalidInputError(f"--log-level is one of {', '.join(LOG_LEVELS)}, "
                                    f"not {level!r}")
    else:
        chosen = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)] \
            if verbose < 3 else TRAFFIC
    handler: logging.Handler
    if log_file is not None:
        try:
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot write the log file {log_file}: "
                                    f"{exc.strerror or exc}") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.set_name(_HANDLER)
    reset_logging()
    root = logging.getLogger()
    _saved_levels.append(root.level)
    root.addHandler(handler)
    root.setLevel(chosen)
    # The libraries underneath are chatty at DEBUG; their frames are not ours to show.
    for noisy in ("bumble", "asyncio", "sqlalchemy", "httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(chosen, logging.INFO))
    return chosen


# -- versions ------------------------------------------------------------------------------------

_LIBRARIES = ("fido2", "bleak", "bumble", "pyscard", "sqlalchemy", "fastapi")


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _fixtures() -> Iterator[str]:
    import tomllib

    import firmware_fixtures

    root = Path(next(iter(firmware_fixtures.__path__)))
    for path in sorted(root.glob("*.toml")):
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            firmware = raw.get("identity", {}).get("firmware_version", "?")
        except (OSError, ValueError):
            firmware = "unreadable"
        yield f"{path.stem} ({firmware})"


def version_text(prog: str) -> str:
    """``--version``: this tool, the firmware fixtures it ships, the libraries it drives."""
    lines = [f"{prog} {_dist_version('nymi-band-stack')} (Python "
             f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro})",
             "firmware fixtures: " + ", ".join(_fixtures())]
    lines.append("libraries: " + ", ".join(
        f"{'python-fido2' if name == 'fido2' else name} {_dist_version(name)}"
        for name in _LIBRARIES))
    return "\n".join(lines)


# -- errors --------------------------------------------------------------------------------------

def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _names(exc: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__


def _hide_password(text: str) -> str:
    import re

    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def explain(exc: BaseException) -> tuple[str, int] | None:
    """One line (what failed, why, what to do) and an exit code for an error a user can cause
    that a library underneath raised, or ``None`` if it is not one of those."""
    for item in _chain(exc):
        names = _names(item)
        found = _explain_one(item, names)
        if found is not None:
            return found
    return None


def _explain_one(exc: BaseException, names: set[str]) -> tuple[str, int] | None:
    message = _first_line(exc)
    if any(n.startswith(("sqlalchemy.exc.OperationalError", "psycopg.OperationalError",
                         "sqlalchemy.exc.InterfaceError")) for n in names):
        why = message.split("\n")[0]
        if why.startswith("("):  # sqlalchemy's "(psycopg.OperationalError) …" prefix
            why = why.split(") ", 1)[-1]
        return (f"cannot reach the NES database: {_hide_password(why)} (check that the "
                "database server runs and that the --nes URL names it)", EXIT_REFUSED)
    if any(n.startswith(("sqlalchemy.exc.ArgumentError", "sqlalchemy.exc.NoSuchModuleError"))
           for n in names):
        return (f"the NES database URL is not usable: {_hide_password(message)} (e.g. "
                "sqlite:///path/nes.db or postgresql://user:password@host/db)", EXIT_BAD_INPUT)
    if any(n.startswith("smartcard.") for n in names):
        return (f"the PC/SC service failed: {message} (is pcscd running? start it with "
                "'sudo systemctl start pcscd', or serve a simulated band with "
                "'nymi-sim serve --vpcd')", EXIT_REFUSED)
    if any(n.startswith(("httpx.ConnectError", "httpx.ConnectTimeout", "httpx.ReadTimeout",
                         "httpx.TransportError")) for n in names):
        return (f"cannot reach the NES over HTTP: {message} (check the --nes URL and that "
                "'nymi-sim nes serve' or the server runs)", EXIT_REFUSED)
    if any(n.startswith("fido2.ctap.CtapError") for n in names):
        return (f"the authenticator refused: {message}", EXIT_REFUSED)
    if any(n.startswith(("dbus_fast.", "bleak.exc.BleakDBusError", "bleak.exc.BleakError"))
           for n in names) or (isinstance(exc, FileNotFoundError) and _is_dbus(exc)):
        return ("the operating system's Bluetooth stack (BlueZ) is not reachable: "
                f"{message} (start bluetoothd, or give a radio with --hci, e.g. "
                "--hci usb:0 or the simulator's tcp-client:127.0.0.1:PORT)", EXIT_REFUSED)
    if isinstance(exc, ConnectionRefusedError | TimeoutError | ConnectionResetError):
        return (f"the connection failed: {message} (check that the band or service is "
                "running and the address is right)", EXIT_REFUSED)
    if isinstance(exc, PermissionError):
        return (f"permission denied: {message}", EXIT_REFUSED)
    return None


def _is_dbus(exc: FileNotFoundError) -> bool:
    text = f"{exc} {exc.filename or ''}".lower()
    return "dbus" in text or "bus_socket" in text or "system_bus" in text


def _report_unexpected(exc: BaseException) -> int:
    logger.debug("unexpected failure", exc_info=exc)
    print(f"error: unexpected failure ({type(exc).__name__}: {_first_line(exc)}); this is a "
          "defect of the tool: rerun with --log-level debug for the details and report them",
          file=sys.stderr)
    return EXIT_INTERNAL


def run_app(app: typer.Typer, prog_name: str, argv: list[str] | None = None) -> int:
    """Run a typer app so that every error is one line and no traceback escapes."""
    try:
        result = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return EXIT_REFUSED
    except InvalidInputError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BandError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            # A usage error of typer's command-line parser (its click exceptions).
            if type(exc).__name__ == "NoArgsIsHelpError":
                return EXIT_BAD_INPUT  # the parser has already shown the help
            message = " ".join(str(exc.format_message()).split())
            print(f"error: {message} (see '{prog_name} --help')", file=sys.stderr)
            return EXIT_BAD_INPUT
        explained = explain(exc)
        if explained is None:
            return _report_unexpected(exc)
        logger.debug("failed", exc_info=exc)
        text, code = explained
        print(f"error: {text}", file=sys.stderr)
        return code
    finally:
        sys.stdout.flush()
        reset_logging()
    return int(result) if isinstance(result, int) else 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

