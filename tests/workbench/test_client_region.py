"""Which region a deployed management API's requests are signed for."""

from __future__ import annotations

import pytest

from meetpilot_dev.client import api_region


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abc123.execute-api.eu-west-1.amazonaws.com/", "eu-west-1"),
        ("https://abc123.execute-api.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("http://127.0.0.1:8080/", None),  # the local gateway: the session's region applies
        ("https://api.example.com/v1", None),  # a custom domain: likewise
        ("https://abc.execute-api.cn-north-1.amazonaws.com.cn", None),  # not recognised: no guess
    ],
)
def test_region_comes_only_from_an_api_gateway_host(url, region):
    assert api_region(url) == region
