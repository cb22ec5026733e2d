"""Per-route throttles of the webhook API, read from the template: each MeetStream route has its own
bucket sized from parameters, the translated stage names routes the API really has, and a flood on
one route (at the largest values the parameters allow) leaves every other route its whole rate.

API Gateway keeps a token bucket per route (rate = refill per second, burst = size) and one for the
account and region (10,000 per second, 5,000 burst by default); a request is served only when both
have a token. The model below is that rule, fed with the template's own numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from meetpilot_dev.stack.template import http_routes, referenced_logical_id

# API Gateway's default account-level throttle per region (the documented quota).
ACCOUNT_RATE = 10_000
ACCOUNT_BURST = 5_000

MEETSTREAM_ROUTES = {
    "POST /webhooks/meetstream/{session_id}/{token}": ("CallbackThrottleRate", "CallbackThrottleBurst"),
    "POST /webhooks/meetstream/live/{session_id}/{token}": (
        "LiveTranscriptThrottleRate",
        "LiveTranscriptThrottleBurst",
    ),
    "POST /webhooks/meetstream": ("WorkspaceThrottleRate", "WorkspaceThrottleBurst"),
}


def _route_keys(template: dict[str, Any], api: str) -> set[str]:
    return {
        f"{r.method} {r.path}"
        for r in http_routes(template)
        if any(
            referenced_logical_id(event["Properties"].get("ApiId")) == api
            and (event["Properties"]["Method"].upper(), event["Properties"]["Path"]) == (r.method, r.path)
            for event in template["Resources"][r.function_logical_id]["Properties"]["Events"].values()
            if event.get("Type") == "HttpApi"
        )
    }


def _value(template: dict[str, Any], value: Any, pick: str) -> int:
    """A literal, or a parameter's Default / MaxValue."""
    if isinstance(value, dict) and "Ref" in value:
        return int(template["Parameters"][value["Ref"]][pick])
    return int(value)


def route_limits(template: dict[str, Any], pick: str = "Default") -> dict[str, tuple[int, int]]:
    """(rate, burst) for every route of every HTTP API, as the stage applies them."""
    limits: dict[str, tuple[int, int]] = {}
    for api_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::HttpApi":
            continue
        props = resource["Properties"]
        default = props.get("DefaultRouteSettings", {})
        own = props.get("RouteSettings", {})
        for key in _route_keys(template, api_id):
            settings = {**default, **own.get(key, {})}
            assert "ThrottlingRateLimit" in settings, f"{key} on {api_id} has no throttle at all"
            limits[f"{api_id} {key}"] = (
                _value(template, settings["ThrottlingRateLimit"], pick),
                _value(template, settings["ThrottlingBurstLimit"], pick),
            )
    return limits


def test_each_meetstream_route_has_its_own_throttle_sized_from_parameters(template: dict[str, Any]) -> None:
    settings = template["Resources"]["WebhookApi"]["Properties"]["RouteSettings"]
    assert set(settings) == set(MEETSTREAM_ROUTES)
    assert set(MEETSTREAM_ROUTES) <= _route_keys(template, "WebhookApi"), "a throttle names a route that is gone"
    params = template["Parameters"]
    for key, (rate_param, burst_param) in MEETSTREAM_ROUTES.items():
        assert settings[key] == {
            "ThrottlingRateLimit": {"Ref": rate_param},
            "ThrottlingBurstLimit": {"Ref": burst_param},
        }
        for name in (rate_param, burst_param):
            assert params[name]["Type"] == "Number" and params[name]["MinValue"] >= 1
        assert params[rate_param]["Default"] <= params[burst_param]["Default"]
    # No two routes share parameters: sizing one never resizes another.
    used = [name for pair in MEETSTREAM_ROUTES.values() for name in pair]
    assert len(used) == len(set(used))


def test_the_translated_stage_throttles_routes_the_api_has(translated: dict[str, Any]) -> None:
    # A RouteSettings key that matches no route makes the deploy fail ("Unable to find Route by key").
    resources = translated["Resources"]
    (stage,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Stage" and r["Properties"]["ApiId"] == {"Ref": "WebhookApi"}
    ]
    body = resources["WebhookApi"]["Properties"]["Body"]
    keys = {f"{method.upper()} {path}" for path, methods in body["paths"].items() for method in methods}
    assert set(stage["RouteSettings"]) == set(MEETSTREAM_ROUTES)
    assert set(stage["RouteSettings"]) <= keys
    for key, (rate_param, burst_param) in MEETSTREAM_ROUTES.items():
        assert stage["RouteSettings"][key]["ThrottlingRateLimit"] == {"Ref": rate_param}
        assert stage["RouteSettings"][key]["ThrottlingBurstLimit"] == {"Ref": burst_param}


def test_every_route_together_stays_inside_the_account_throttle(template: dict[str, Any]) -> None:
    at_most = route_limits(template, "MaxValue")
    assert sum(rate for rate, _ in at_most.values()) < ACCOUNT_RATE
    assert sum(burst for _, burst in at_most.values()) < ACCOUNT_BURST


@dataclass
class Bucket:
    rate: float
    size: float
    tokens: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.size

    def refill(self, seconds: float) -> None:
        self.tokens = min(self.size, self.tokens + self.rate * seconds)


def serve(limits: dict[str, tuple[int, int]], offered: dict[str, float], seconds: float = 10.0) -> dict[str, int]:
    """Requests served per route when each route is offered ``offered[route]`` requests a second."""
    routes = {key: Bucket(rate, burst) for key, (rate, burst) in limits.items()}
    account = Bucket(ACCOUNT_RATE, ACCOUNT_BURST)
    served = dict.fromkeys(limits, 0)
    owed = dict.fromkeys(limits, 0.0)
    tick = 0.01
    for _ in range(round(seconds / tick)):
        account.refill(tick)
        for bucket in routes.values():
            bucket.refill(tick)
        for key, per_second in offered.items():
            owed[key] += per_second * tick
            while owed[key] >= 1:
                owed[key] -= 1
                if routes[key].tokens >= 1 and account.tokens >= 1:
                    routes[key].tokens -= 1
                    account.tokens -= 1
                    served[key] += 1
    return served


@pytest.mark.parametrize("pick", ["Default", "MaxValue"])
@pytest.mark.parametrize("flooded", sorted(MEETSTREAM_ROUTES))
def test_a_flood_on_one_route_leaves_every_other_route_its_rate(
    template: dict[str, Any], flooded: str, pick: str
) -> None:
    limits = route_limits(template, pick)
    target = f"WebhookApi {flooded}"
    # The flooded route is offered 100 times its rate; every other route exactly its rate.
    offered = {key: float(rate) for key, (rate, _) in limits.items()}
    offered[target] = 100.0 * limits[target][0]
    served = serve(limits, offered)
    for key, (rate, _) in limits.items():
        if key == target:
            assert served[key] <= limits[key][1] + 10 * rate, "the flood was not capped"
        else:
            # Every request it was offered (give or take the last one of the 10 s, to rounding).
            assert served[key] >= 10 * rate - 1, f"{key} was starved by a flood on {flooded}"


def test_the_model_shows_starvation_when_routes_share_one_bucket(template: dict[str, Any]) -> None:
    # Without route settings every route would draw on the account bucket alone: the flood wins.
    limits = {key: (ACCOUNT_RATE, ACCOUNT_BURST) for key in route_limits(template)}
    target = f"WebhookApi {sorted(MEETSTREAM_ROUTES)[0]}"
    offered = {key: 20.0 for key in limits}
    offered[target] = 50.0 * ACCOUNT_RATE
    served = serve(limits, offered, seconds=2.0)
    assert any(served[key] < 40 for key in limits if key != target)
