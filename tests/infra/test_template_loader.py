"""meetpilot_dev.stack.template reads CloudFormation YAML and answers the local stack's questions."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from meetpilot.errors import ConfigurationError
from meetpilot_dev.stack.template import (
    TEMPLATE_ENV,
    function_environment,
    function_properties,
    load_template,
    queue_definitions,
    sqs_event_sources,
    table_definition,
    ttl_attribute,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_short_form_tags_load_as_their_long_form(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        Conditions:
          HasFlag: !Not [!Equals [!Ref Flag, ""]]
        Resources:
          Thing:
            Type: AWS::SQS::Queue
            Properties:
              A: !Ref Other
              B: !GetAtt Other.Arn
              C: !GetAtt [Other, Arn]
              D: !Sub "${Other.Arn}/x"
              E: !If [HasFlag, !Join ["-", [a, !Select [0, [b]]]], !Ref AWS::NoValue]
              F: !Condition HasFlag
        """,
    )
    tpl = load_template(path)

    assert tpl["Conditions"]["HasFlag"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "Flag"}, ""]}]}
    props = tpl["Resources"]["Thing"]["Properties"]
    assert props["A"] == {"Ref": "Other"}
    assert props["B"] == {"Fn::GetAtt": ["Other", "Arn"]}
    assert props["C"] == {"Fn::GetAtt": ["Other", "Arn"]}
    assert props["D"] == {"Fn::Sub": "${Other.Arn}/x"}
    assert props["E"] == {
        "Fn::If": ["HasFlag", {"Fn::Join": ["-", ["a", {"Fn::Select": [0, ["b"]]}]]}, {"Ref": "AWS::NoValue"}]
    }
    assert props["F"] == {"Condition": "HasFlag"}


def test_loader_refuses_arbitrary_python_objects(tmp_path: Path) -> None:
    path = _write(tmp_path, "Resources: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(Exception, match="python/object"):
        load_template(path)


def test_missing_template_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="source checkout"):
        load_template(tmp_path / "nope.yaml")


def test_a_document_without_resources_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Resources"):
        load_template(_write(tmp_path, "Parameters: {}\n"))


def test_default_template_is_the_repository_one() -> None:
    tpl = load_template()
    assert tpl["Transform"] == "AWS::Serverless-2016-10-31"


def test_table_definition_is_ready_for_create_table(template: dict[str, Any]) -> None:
    definition = table_definition(template)
    assert set(definition) == {
        "KeySchema",
        "AttributeDefinitions",
        "GlobalSecondaryIndexes",
        "BillingMode",
        "StreamSpecification",
    }
    assert definition["BillingMode"] == "PAY_PER_REQUEST"
    assert definition["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert [i["IndexName"] for i in definition["GlobalSecondaryIndexes"]] == [
        "by-calendar-event",
        "by-bot",
        "attention",
        "sessions-by-status",
        "sessions-by-month",
    ]
    assert ttl_attribute(template) == "expires_at"


def test_globals_merge_like_sam(tpl: dict[str, Any]) -> None:
    tpl["Globals"]["Function"]["Layers"] = ["global-layer"]
    fn = tpl["Resources"]["DispatchFunction"]["Properties"]
    fn["Layers"] = ["own-layer"]
    fn["Environment"]["Variables"]["BOT_NAME"] = "override"

    props = function_properties(tpl, "DispatchFunction")

    assert props["Layers"] == ["global-layer", "own-layer"]  # lists add up
    assert props["Timeout"] == 60  # scalars: the function wins
    assert props["MemorySize"] == 512  # and globals fill the gaps
    env = function_environment(tpl, "DispatchFunction")
    assert env["BOT_NAME"] == "override"  # maps merge key by key
    assert env["TABLE_NAME"] == {"Ref": "Table"}


def test_queue_values_must_be_literal(tpl: dict[str, Any]) -> None:
    tpl["Resources"]["DispatchQueue"]["Properties"]["VisibilityTimeout"] = {"Ref": "Something"}
    with pytest.raises(ConfigurationError, match="literal"):
        queue_definitions(tpl)


def test_redrive_must_point_at_a_queue(tpl: dict[str, Any]) -> None:
    tpl["Resources"]["DispatchQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] = {
        "Fn::GetAtt": ["Table", "Arn"]
    }
    with pytest.raises(ConfigurationError, match="not a queue"):
        queue_definitions(tpl)


def test_sqs_event_source_defaults(tpl: dict[str, Any]) -> None:
    event = tpl["Resources"]["BotEventsFunction"]["Properties"]["Events"]["Delivered"]["Properties"]
    del event["BatchSize"], event["FunctionResponseTypes"]

    (source,) = (s for s in sqs_event_sources(tpl) if s.function_logical_id == "BotEventsFunction")

    assert (source.batch_size, source.report_batch_item_failures, source.maximum_concurrency) == (10, False, None)


def test_the_template_comes_from_the_variable_else_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = _write(tmp_path, "Resources: {Queue: {Type: AWS::SQS::Queue}}\n")
    monkeypatch.setenv(TEMPLATE_ENV, str(elsewhere))
    assert load_template()["Resources"] == {"Queue": {"Type": "AWS::SQS::Queue"}}
    monkeypatch.delenv(TEMPLATE_ENV)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(ConfigurationError, match=TEMPLATE_ENV):
        load_template()  # no template.yaml here: the error says how to point at one
