"""The HTML report of the test history: one self-contained page.

:mod:`~pytest_crosscache.report.data` turns a history, the flaky verdicts
and a shard plan into a view model; :mod:`~pytest_crosscache.report.html`
renders that model as a page, with the charts of
:mod:`~pytest_crosscache.report.svg` and the stylesheet and script of
:mod:`~pytest_crosscache.report.assets`.  Both steps are pure functions:
no I/O, no clock (the time of the report is an argument).
"""
