"""Load on the enterprise server from simulated bands: a Locust file and its preparation.

``nymi-sim load`` prepares a site (directory users, self-service policy), serves it with
``nymi-sim nes serve`` unless a server is named, and runs :mod:`simulator.load.locustfile` with
Locust, in one process or as a master with workers. Each simulated user owns one emulated band,
held in-process, and runs the Nymi Band Application's flows against the server over HTTP.
"""
