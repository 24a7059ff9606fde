"""The pieces both command-line tools share: human rendering, library errors explained in one
line, logging that leaves an in-process caller as it was."""

from __future__ import annotations

import logging

import pytest
import typer

from nymi_device.cli_support import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_REFUSED,
    TRAFFIC,
    configure_logging,
    explain,
    human,
    run_app,
)
from nymi_device.errors import InvalidInputError


@pytest.mark.parametrize(("value", "shown"), [
    (True, "yes"), (False, "no"), (None, "—"), ([], "—"), ({}, "—"), (["nfc", "ble"], "nfc, ble"),
    ({"rk": True, "up": False, "clientPin": None}, "rk: yes, up: no, clientPin: —"),
    (b"\xfb\xff", "-_8"), (2.0, "2"), ("text", "text"),
])
def test_human_never_shows_a_python_repr(value: object, shown: str) -> None:
    assert human(value) == shown


def test_database_errors_are_explained_without_the_password() -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine("postgresql+psycopg://u:secret@127.0.0.1:1/db")
    with pytest.raises(Exception) as caught:
        engine.connect()
    explained = explain(caught.value)
    assert explained is not None
    text, code = explained
    assert code == EXIT_REFUSED and text.startswith("cannot reach the NES database")
    assert "secret" not in text and "\n" not in text


def test_unknown_failures_are_one_line_and_a_defect(capsys: pytest.CaptureFixture[str]) -> None:
    app = typer.Typer()

    @app.command()
    def boom() -> None:
        raise KeyError("x")

    @app.command()
    def bad() -> None:
        raise InvalidInputError("bad\nthing")

    assert run_app(app, "t", ["boom"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected failure (KeyError" in err
    assert run_app(app, "t", ["bad"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "error: bad thing\n"


def test_logging_is_restored_after_a_command() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    assert configure_logging(3) == TRAFFIC
    mine = [h for h in root.handlers if h.get_name() == "nymi-cli"]
    record = logging.LogRecord("x", TRAFFIC, __file__, 1, "SEND %s", ("00",), None)
    assert " TRAFFIC x: SEND 00" in mine[0].format(record)
    app = typer.Typer()

    @app.command()
    def noop() -> None:
        configure_logging(level="debug")

    @app.command()
    def other() -> None:
        pass

    run_app(app, "t", ["noop"])
    assert root.level == level and root.handlers == handlers
