"""``nymi-band diagnose``: collect evidence about a band and its server, find known problems.

``collect`` gathers the evidence (:mod:`.evidence`), ``rules`` turn it into findings, and the
renderers write the terminal report, ``--json`` (with its schema), ``--html`` and ``--bundle``.
"""
