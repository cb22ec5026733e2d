"""The management API refuses a feed address that points inside, with a 422 that does not echo it."""

from __future__ import annotations

import pytest

from meetpilot_dev.client import ApiError


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            "http://169.254.169.254/latest/meta-data/iam/private-2",
            "169.254.169.254 is not a public address (link-local)",
        ),
        ("http://10.0.0.7:8080/private-2/basic.ics", "10.0.0.7 is not a public address (private)"),
        ("webcal://[::1]/private-2/basic.ics", "::1 is not a public address (loopback)"),
        # The local stack allows 127.0.0.1 for its fake feeds, and nothing else of 127/8.
        ("http://127.0.0.2:9/private-2/basic.ics", "127.0.0.2 is not a public address (loopback)"),
        ("http://0.0.0.0:9/private-2/basic.ics", "(unspecified)"),
    ],
    ids=["metadata", "rfc1918", "loopback-v6", "loopback-v4", "unspecified"],
)
def test_a_feed_address_inside_is_refused_with_a_422(api, url, words):
    user = "ivan-" + words.split()[0].replace(":", "")
    with pytest.raises(ApiError) as caught:
        api.post("/v1/calendars", {"provider": "ics", "feed_url": url, "user_id": user})
    assert caught.value.status == 422
    assert words in caught.value.message and "private-2" not in caught.value.message
    assert api.get("/v1/calendars", params={"user_id": user})["items"] == []
