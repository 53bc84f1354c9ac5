"""Finishing sooner from recorded durations: ``--sf``, its xdist scheduler, ``--shard``.

The algorithms (:mod:`.estimate`, :mod:`.lpt`, :mod:`.plan`, :mod:`.units`,
:mod:`.order`) are pure functions of node ids and durations; the pytest
side (:mod:`.hooks`, :mod:`.slowfirst`, :mod:`.shard`,
:mod:`.xdist_scheduler`) is loaded only when ``--sf`` or ``--shard`` is given.
"""
