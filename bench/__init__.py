"""meetpilot benchmarks: punctuality under a burst, webhook intake, transcript scaling, AWS cost.

Run them all with ``python -m bench`` (``make bench``); each module also has a ``run`` function
that the smoke tests in ``tests/bench`` call with tiny sizes.
"""
