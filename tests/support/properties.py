"""Shared pieces of the property-based tests: one embedded stack per module, fixed-seed settings,
and helpers that read the real (emulated) queues."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

from meetpilot.domain.clock import Clock
from meetpilot_dev.stack.embedded import LocalStack, StackOptions

# Derandomized: every run explores the same examples, so a red build is reproducible; the example
# counts keep the whole property suite well under a minute.
PROPERTY = settings(
    derandomize=True,
    deadline=None,
    max_examples=100,  # hypothesis's own default; every example here is a round trip through the stack
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def start_stack(clock: Clock | None = None) -> LocalStack:
    return LocalStack(StackOptions(background_pollers=False), clock=clock).start()


def take_all(stack: LocalStack, queue_url: str) -> list[str]:
    """The raw bodies of every message now in ``queue_url``, removed from it."""
    sqs = stack.container.client("sqs")
    out: list[str] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            out.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return out


def is_valid_sqs_body(text: str) -> bool:
    """What real SQS accepts in a message body (the emulator does not check the characters)."""
    return all(
        ch in "\t\n\r" or 0x20 <= ord(ch) <= 0xD7FF or 0xE000 <= ord(ch) <= 0xFFFD or 0x10000 <= ord(ch) <= 0x10FFFF
        for ch in text
    )


def json_values(max_leaves: int = 20) -> Any:
    """Any JSON value: scalars of every type (unicode, huge ints, floats), nested lists and objects."""
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def with_any_other_keys(objects: Any, max_size: int = 3) -> Any:
    """Objects from ``objects`` with a few more keys of any name and any JSON value next to them."""
    from hypothesis import strategies as st

    extra = st.dictionaries(st.text(max_size=12), json_values(4), max_size=max_size)
    return st.tuples(objects, extra).map(lambda pair: {**pair[1], **pair[0]})
