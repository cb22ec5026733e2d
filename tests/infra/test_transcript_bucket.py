"""The transcript bucket keeps replaced and deleted versions only for a while: its lifecycle rules
end non-current versions after a parameter's days (7 by default), abort uploads that never finished
and remove delete markers left with nothing behind them."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws


def _rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    props = template["Resources"]["TranscriptBucket"]["Properties"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    return {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}


def test_noncurrent_transcript_versions_expire_after_the_parameters_days(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["NoncurrentVersionRetentionDays"]
    assert parameter["Type"] == "Number" and int(parameter["Default"]) == 7 and int(parameter["MinValue"]) >= 1
    rule = _rules(template)["ExpireNoncurrentVersions"]
    assert rule["Status"] == "Enabled"
    assert "Prefix" not in rule and "TagFilters" not in rule  # every object of the bucket
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "NoncurrentVersionRetentionDays"}}


def test_incomplete_uploads_are_aborted_and_bare_delete_markers_removed(template: dict[str, Any]) -> None:
    rules = _rules(template)
    assert rules["AbortIncompleteMultipartUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules["RemoveExpiredDeleteMarkers"]["ExpiredObjectDeleteMarker"] is True
    assert all(rule["Status"] == "Enabled" for rule in rules.values())


def _as_s3_api(rule: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape, ``!Ref`` resolved to its default."""

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return int(parameters[value["Ref"]]["Default"])
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": ""}}
    for key, value in rule.items():
        if key in ("Id", "Status"):
            continue
        if key == "ExpiredObjectDeleteMarker":
            api["Expiration"] = {"ExpiredObjectDeleteMarker": value}
        else:
            api[key] = resolve(value)
    return api


@pytest.mark.usefixtures("offline_aws")
def test_the_rules_are_a_lifecycle_configuration_s3_accepts(template: dict[str, Any]) -> None:
    rules = [_as_s3_api(rule, template["Parameters"]) for rule in _rules(template).values()]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        s3.create_bucket(Bucket="transcripts")
        s3.put_bucket_versioning(Bucket="transcripts", VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_lifecycle_configuration(Bucket="transcripts", LifecycleConfiguration={"Rules": rules})
        stored = s3.get_bucket_lifecycle_configuration(Bucket="transcripts")["Rules"]
    by_id = {rule["ID"]: rule for rule in stored}
    assert by_id["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7
