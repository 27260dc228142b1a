"""Easel on more than one GPU: the engine hands fair batches to ``easel worker`` processes
through Redis (README: "More than one GPU").

* ``config.py``: the ``[cluster]`` section (broker URL, heartbeats, timeouts).
* ``protocol.py``: what travels through Redis and under which keys (pure).
* ``broker.py``: the Redis side: streams, consumer groups, the batch-lock Lua scripts.
* ``routing.py``: which worker gets a batch, which waiting batch goes back (pure policy).
* ``dispatcher.py``: the engine's side (:class:`ClusterWorker`, in place of the local worker).
* ``remote.py``: the worker's side (:class:`RemoteWorker`, ``easel worker``).
* ``standin.py``: a fixed-time renderer standing in for a GPU (benchmarks and fault tests).

Layers: ``bot`` above ``cluster`` above ``generation`` above ``storage``; nothing here touches
the database except through the engine's store in ``dispatcher.py``.
"""
