"""Alarms and the dashboard in template.yaml: every dead-letter queue is watched, the application
alarms read metrics the functions really write, and notifications go to the optional SNS topic."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from meetpilot_dev.stack.template import (
    on_failure_queues,
    queue_definitions,
    referenced_logical_id,
    resources_of_type,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "meetpilot"


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: template["Resources"][logical_id]["Properties"]
        for logical_id in resources_of_type(template, "AWS::CloudWatch::Alarm")
    }


def _alarmed_queue(props: dict[str, Any]) -> str | None:
    if props.get("Namespace") != "AWS/SQS":
        return None
    for dimension in props.get("Dimensions", []):
        if dimension["Name"] == "QueueName":
            value = dimension["Value"]
            # !GetAtt Queue.QueueName
            target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
            if isinstance(target, list) and target[1] == "QueueName":
                return str(target[0])
            if isinstance(target, str) and target.endswith(".QueueName"):
                return target.split(".")[0]
    return None


def test_every_dead_letter_queue_has_an_alarm_that_fires_on_one_message(template: dict[str, Any]) -> None:
    # The stream publisher's on-failure destination is the dead-letter queue of the table's stream.
    dlqs = {q.dlq_logical_id for q in queue_definitions(template) if q.dlq_logical_id} | on_failure_queues(template)
    assert len(dlqs) >= 5
    watched: dict[str, list[str]] = {}
    for logical_id, props in _alarms(template).items():
        queue = _alarmed_queue(props)
        if queue is None:
            continue
        watched.setdefault(queue, []).append(logical_id)
        assert props["MetricName"] == "ApproximateNumberOfMessagesVisible", logical_id
        assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0, logical_id
        assert props["TreatMissingData"] == "notBreaching", logical_id
    missing = sorted(dlqs - set(watched))
    assert missing == [], f"dead-letter queues without an alarm: {missing}"
    assert all(len(ids) == 1 for ids in watched.values()), watched  # one alarm per DLQ
    assert set(watched) <= dlqs  # main queues are not alarmed on depth (they are meant to hold work)


def test_application_alarms_watch_metrics_the_code_emits(template: dict[str, Any]) -> None:
    emitted = set()
    for path in SRC.joinpath("handlers").glob("*.py"):
        emitted |= set(re.findall(r'count(?:_by)?\(\s*"([A-Za-z]+)"', path.read_text()))
        emitted |= set(re.findall(r'seconds\(\s*"([A-Za-z]+)"', path.read_text()))
    app = {
        logical_id: p
        for logical_id, p in _alarms(template).items()
        if p.get("Namespace") == "meetpilot" and "ExtendedStatistic" not in p
    }
    watched = {p["MetricName"] for p in app.values()}
    assert watched == {"DispatchFailures", "SessionsNeedingReview"}
    assert watched <= emitted | {"SessionsNeedingReview"}, sorted(emitted)
    assert "SessionsNeedingReview" in SRC.joinpath("handlers", "observability.py").read_text()
    for props in app.values():
        # Powertools Metrics adds the service dimension; an alarm without it would watch nothing.
        assert props["Dimensions"] == [{"Name": "service", "Value": "meetpilot"}]
        assert props["Statistic"] == "Sum" and props["Threshold"] == 0


def test_alarms_notify_the_optional_topic(template: dict[str, Any]) -> None:
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    for logical_id, props in _alarms(template).items():
        for key in ("AlarmActions", "OKActions"):
            action = props[key]["Fn::If"]
            assert action[0] == "HasAlarmTopic", logical_id
            assert referenced_logical_id(action[1][0]) == "AlarmTopicArn", logical_id
            assert action[2] == {"Ref": "AWS::NoValue"}, logical_id


def test_dashboard_body_is_json_and_shows_every_alarm(template: dict[str, Any]) -> None:
    (dashboard,) = resources_of_type(template, "AWS::CloudWatch::Dashboard")
    body = template["Resources"][dashboard]["Properties"]["DashboardBody"]["Fn::Sub"]
    references = set(re.findall(r"\$\{([A-Za-z0-9:.]+)\}", body))
    resolved = json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "x", body))
    assert {w["type"] for w in resolved["widgets"]} == {"metric", "alarm"}
    assert {f"{a}.Arn" for a in _alarms(template)} <= references
    names = json.dumps(resolved)
    for metric in ("BotsDispatched", "DispatchLateness", "WebhooksRejected", "EventsApplied", "DuplicatesIgnored"):
        assert metric in names
    for metric in ("TranscriptsStored", "TranscriptLatency", "SessionsNeedingReview"):
        assert metric in names


def test_join_lateness_alarm_reads_the_p95_the_code_writes_against_a_parameter(template: dict[str, Any]) -> None:
    (props,) = [p for p in _alarms(template).values() if p.get("MetricName") == "JoinLateness"]
    assert props["Namespace"] == "meetpilot"
    assert props["ExtendedStatistic"] == "p95" and "Statistic" not in props
    # The service-only dimension set of the EMF line: the alarm covers every platform at once.
    assert props["Dimensions"] == [{"Name": "service", "Value": "meetpilot"}]
    assert referenced_logical_id(props["Threshold"]) == "JoinLatenessAlarmSeconds"
    parameter = template["Parameters"]["JoinLatenessAlarmSeconds"]
    assert parameter["Type"] == "Number" and parameter["Default"] > 0
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["TreatMissingData"] == "notBreaching"
    observability = SRC.joinpath("handlers", "observability.py").read_text()
    assert 'name="JoinLateness"' in observability and "add_dimensions(service=SERVICE" in observability


def test_dashboard_shows_join_punctuality_by_platform(template: dict[str, Any]) -> None:
    (dashboard,) = resources_of_type(template, "AWS::CloudWatch::Dashboard")
    body = template["Resources"][dashboard]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "x", body))["widgets"]
    for metric in ("JoinLateness", "AdmissionWait"):
        (widget,) = [w for w in widgets if w["type"] == "metric" and w["properties"]["metrics"][0][1:2] == [metric]]
        rows = widget["properties"]["metrics"]
        assert rows[0][:6] == ["meetpilot", metric, "service", "meetpilot", "Platform", "Google Meet"]
        platforms = ["Google Meet"] + [row[1] for row in rows if isinstance(row[1], str) and row[0] == "..."]
        assert platforms == ["Google Meet", "Zoom", "Teams"]
        stats = [row[-1]["stat"] for row in rows]
        assert stats == ["p50", "p95"] * 3
