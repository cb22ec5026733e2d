"""The one use case each queue worker runs per message (one module per queue, so a function imports
only its own), and the step that follows every one of them (``followups``).

A use case here decides what must happen after its work (send the message again later) as
``FollowUps``; ``carry_out`` does it, the same way for every queue. The handlers only parse the
message, call one function here and turn its answer into logs and metrics.
"""
