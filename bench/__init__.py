"""Benchmarks of the signing service (issue 5): ``python -m bench`` or ``bench/run``.

Parts, all measured in the same run so that their ratios hold however busy the machine is:

- ``ceiling``: the crypto one complete signing costs, in-process (no HTTP, no database);
- ``load``: complete signings/s and latency through HTTP, SQLite and PostgreSQL, 1 and 2
  workers, at several client counts; lookups (``GET /v1/entries``) per second;
- ``offline``: offline bundle verification per second on one core;
- ``scale``: lookup latency at 1 k, 100 k (and, with ``--million``, 1 M) stored signatures;
- ``profiling``: where the service's time goes under load (py-spy);
- ``report``: the table, ``docs/benchmarks.md`` (only this suite's sections) and the chart.

``bench/page.py`` (the web page's list, issue 4) is a separate benchmark with its own section.
"""
