"""Locust file: every simulated user owns an emulated band and runs the flows over HTTP.

    locust -f simulator/load/locustfile.py --host http://127.0.0.1:8080/nes

(``nymi-sim load`` prepares the site and runs this, in one process or as a master with
workers.) Every flow is also written to its process's ledger in ``$NYMI_LOAD_DIR``, from which
``nymi-sim load`` computes its figures whatever Locust's own report caught of the last
seconds. A user enrolls its band, creates a FIDO2 key and signs in with it, then loops:
self-service re-enrollment, a new key, a sign-in. Each flow is reported to Locust as one
request of type ``flow``, timed from its first call to the server's last answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from locust import User, constant, task

from simulator.load.scenario import DEFAULT_PASSWORD, DIR_ENV, PASSWORD_ENV, LoadUser


def _worker_index(environment: Any) -> int:
    return int(getattr(environment.runner, "worker_index", 0) or 0)


class BandUser(User):
    """One person with one band."""

    wait_time = constant(0)

    def on_start(self) -> None:
        root = Path(os.environ.get(DIR_ENV, ".nymi-load"))
        root.mkdir(parents=True, exist_ok=True)
        self.user = LoadUser(str(self.host), _worker_index(self.environment), root,
                             password=os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD))

    def on_stop(self) -> None:
        self.user.close()

    @task
    def round_of_flows(self) -> None:
        for name, step in self.user.steps():
            elapsed, error = self.user.run_step(name, step)
            self.environment.events.request.fire(
                request_type="flow", name=name, response_time=elapsed, response_length=0,
                exception=error, context={"serial": self.user.serial})
            if error is not None:
                return
