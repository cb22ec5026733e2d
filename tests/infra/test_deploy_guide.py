"""The deploy guide in README.md cannot drift: every shell command in the README's code blocks has
to be one of the forms listed here, each form names the test that runs it offline (or says why it
cannot run without AWS), and the guide's own commands are run here as written.

- `aws ssm put-parameter` and `aws events put-rule|put-targets` lines are turned into the same API
  requests (botocore's model maps each option to its parameter) and sent to the AWS emulator; the
  secrets are then read back through meetpilot's own SSM adapter, and events published by
  meetpilot's EventBridge publisher are routed by the README's rule;
- samconfig.example.toml lists every template parameter with its default, in a form SAM itself
  parses (its own parameter-overrides type, from the SAM CLI's virtualenv);
- `meetpilot ...` lines must parse against the real CLI, and some test must invoke that command.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import typer
from botocore import xform_name
from moto import mock_aws

from meetpilot.adapters.eventbridge import EventBridgePublisher
from meetpilot.adapters.ssm import SsmSecrets
from meetpilot_dev.cli import app
from tests.infra.test_sam_build import ROOT, SAM_VENV, SAMCONFIG_EXAMPLE, _need_sam, _offline_env

README = ROOT / "README.md"
SHELL_INFO = {"sh", "bash", "shell", "console"}
FAKE_MARKERS = ("REPLACE", "PLACEHOLDER")
OAUTH_PARAMETERS = ("GoogleOAuthClientParam", "MicrosoftOAuthClientParam")


# --- reading the README -----------------------------------------------------------------------------


def readme_commands(text: str) -> list[list[str]]:
    """Each shell command in the README's sh/bash code blocks, as argv (comments dropped, `&&` split)."""
    commands: list[list[str]] = []
    for info, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if info not in SHELL_INFO:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            current: list[str] = []
            for token in argv:
                if token == "&&":
                    commands.append(current)
                    current = []
                else:
                    current.append(token)
            if current:
                commands.append(current)
    return commands


def _commands(prefix: tuple[str, ...]) -> list[list[str]]:
    found = [argv for argv in readme_commands(README.read_text()) if tuple(argv[: len(prefix)]) == prefix]
    assert found, f"README.md has no `{' '.join(prefix)}` command any more: update this test with the guide"
    return found


# --- the forms a README command may take ----------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    describes: str
    matches: Callable[[list[str]], bool]
    # "path::test_function" of the test that runs it, or None with the reason it cannot run offline.
    exercised_by: str | None
    why_not: str = ""


def _is(*words: str) -> Callable[[list[str]], bool]:
    return lambda argv: argv == list(words)


def _starts(*words: str) -> Callable[[list[str]], bool]:
    return lambda argv: argv[: len(words)] == list(words)


def _sam(*words: str) -> Callable[[list[str]], bool]:
    # `sam X` or the repository's own install, `scripts/sam.sh run X`.
    return lambda argv: argv in (["sam", *words], ["scripts/sam.sh", "run", *words])


def _meetpilot_cli(argv: list[str]) -> bool:
    return bool(argv) and argv[0] in ("meetpilot", ".venv/bin/meetpilot")


HERE = "tests/infra/test_deploy_guide.py"
SAM_BUILD = "tests/infra/test_sam_build.py"
FORMS = [
    Form(
        "make demo",
        _is("make", "demo"),
        "tests/workbench/test_demo.py::test_demo_writes_transcripts_and_a_summary_line",
    ),
    Form("make test", _is("make", "test"), ".ci/run"),
    Form("make sam-cli", _is("make", "sam-cli"), f"{SAM_BUILD}::test_sam_validate_lint_passes_offline"),
    Form("pytest on a part of the suite", _starts(".venv/bin/pytest"), ".ci/run"),
    Form(
        "the simulator on its own",
        _starts(".venv/bin/python", "-m", "meetpilot_dev.simulator"),
        "tests/workbench/simulator/test_server.py",
    ),
    Form(
        "meetpilot CLI commands", _meetpilot_cli, f"{HERE}::test_every_cli_command_in_the_readme_parses_and_is_tested"
    ),
    Form(
        "put the secrets in SSM",
        _starts("aws", "ssm", "put-parameter"),
        f"{HERE}::test_the_ssm_commands_store_secrets_meetpilot_reads",
    ),
    Form(
        "subscribe to events", _starts("aws", "events"), f"{HERE}::test_the_event_rule_routes_transcript_ready_events"
    ),
    Form(
        "start from the example SAM config",
        _is("cp", "samconfig.example.toml", "samconfig.toml"),
        f"{HERE}::test_samconfig_example_has_every_template_parameter_with_its_default",
    ),
    Form(
        "read the management API's URL from the stack",
        _starts("API=$(aws", "cloudformation", "describe-stacks"),
        None,
        "reads a deployed stack's outputs: needs an AWS account; the CLI does the same (ManagementClient.for_stack)",
    ),
    Form(
        "connect a calendar with curl, the token read from a file",
        lambda argv: argv[:3] == ["jq", "-n", "--rawfile"] or argv[:2] == ["curl", "-sS"],
        None,
        "signs a request to a deployed API: needs an AWS account; the same POST /v1/calendars body is sent "
        "through the local gateway in tests/service/handlers/api/test_routes_calendars.py",
    ),
    Form("sam build", _sam("build"), f"{SAM_BUILD}::test_sam_build_gives_every_function_its_handler_and_nothing_else"),
    Form("sam validate --lint", _sam("validate", "--lint"), f"{SAM_BUILD}::test_sam_validate_lint_passes_offline"),
    Form(
        "sam deploy",
        lambda argv: argv in (["sam", "deploy"], ["sam", "deploy", "--guided"]),
        None,
        "creates a CloudFormation stack: needs an AWS account. Its inputs are tested offline: the "
        "template's translation and lint (test_template_lint.py), the build, and samconfig.example.toml",
    ),
    Form("make bench", _is("make", "bench"), "tests/bench/test_bench_smoke.py::test_bench_command_writes_results"),
]


def _form_for(argv: list[str]) -> Form | None:
    return next((form for form in FORMS if form.matches(argv)), None)


def _test_exists(reference: str) -> bool:
    path, _, name = reference.partition("::")
    file = ROOT / path
    if not file.is_file():
        return False
    if not name:
        return True
    tree = ast.parse(file.read_text())
    return any(isinstance(node, ast.FunctionDef) and node.name == name for node in tree.body)


def test_every_shell_command_in_the_readme_is_an_exercised_form() -> None:
    commands = readme_commands(README.read_text())
    assert len(commands) >= 15, "fewer commands than the guide alone has: is the README parsed right?"
    unknown = [" ".join(argv) for argv in commands if _form_for(argv) is None]
    assert not unknown, (
        "README.md shows commands that no test exercises; add a test and a Form in "
        f"{HERE} (or fix the command):\n  " + "\n  ".join(unknown)
    )


def test_every_form_names_a_test_that_exists_or_why_it_cannot_run_offline() -> None:
    for form in FORMS:
        if form.exercised_by is None:
            assert len(form.why_not) > 30, f"{form.describes}: say why it cannot run offline"
        else:
            assert _test_exists(form.exercised_by), f"{form.describes}: {form.exercised_by} does not exist"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_command_reader_sees_what_a_shell_would() -> None:
    text = "```sh\nsam build && sam deploy  # then\nmake \\\n  demo\n```\n```\nnot a command\n```\n"
    assert readme_commands(text) == [["sam", "build"], ["sam", "deploy"], ["make", "demo"]]
    assert _form_for(["sam", "delete"]) is None
    assert _form_for(["scripts/sam.sh", "run", "build"]) is FORMS[11]


# --- meetpilot CLI commands -----------------------------------------------------------------------------


def _parse_cli(args: list[str]) -> Any:
    """Parse like the real `meetpilot` would, down to the leaf command, without running anything.

    Typer carries its own copy of click, so groups are told apart by what they can do.
    """
    command = typer.main.get_command(app)
    ctx = command.make_context("meetpilot", list(args))
    while hasattr(ctx.command, "resolve_command"):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = ctx.command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
    return ctx


def _command_path(ctx: Any) -> list[str]:
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return names[::-1]


# Commands whose tests call the function behind them instead of going through the CLI.
_TESTED_BEHIND_THE_CLI = {("dev",): "tests/workbench/test_dev.py", ("demo",): "tests/workbench/test_demo.py"}


def _invoked_by_a_test(path: list[str]) -> bool:
    if tuple(path) in _TESTED_BEHIND_THE_CLI:
        return (ROOT / _TESTED_BEHIND_THE_CLI[tuple(path)]).is_file()
    quoted = r"\s*,\s*".join(rf"[\"']{re.escape(word)}[\"']" for word in path)
    pattern = re.compile(quoted)
    return any(pattern.search(f.read_text()) for f in (ROOT / "tests").rglob("test_*.py"))


def test_every_cli_command_in_the_readme_parses_and_is_tested() -> None:
    seen = 0
    for argv in readme_commands(README.read_text()):
        if not _meetpilot_cli(argv):
            continue
        seen += 1
        try:
            ctx = _parse_cli(argv[1:])
        except Exception as exc:  # typer's click raises its own UsageError family
            if not hasattr(exc, "format_message"):
                raise
            pytest.fail(f"README: `{' '.join(argv)}` does not parse: {exc.format_message()}", pytrace=False)
        path = _command_path(ctx)
        assert _invoked_by_a_test(path), f"no test runs `meetpilot {' '.join(path)}` (shown in README.md)"
    assert seen >= 5


def test_the_cli_parser_rejects_a_misspelt_option() -> None:
    with pytest.raises(Exception, match="--icss") as raised:
        _parse_cli(["calendars", "add", "--icss", "https://example.com/a.ics", "--user", "a"])
    assert type(raised.value).__name__ == "NoSuchOption"
    with pytest.raises(Exception, match="user") as raised:
        _parse_cli(["calendars", "add", "--ics", "https://example.com/a.ics"])
    assert type(raised.value).__name__ == "MissingParameter"


# --- aws CLI lines, as API requests against the emulator ---------------------------------------------------


def _as_request(argv: list[str], session: boto3.session.Session) -> tuple[Any, str, dict[str, Any]]:
    """`aws SERVICE OPERATION --opt value ...` as (client, method, params), read through botocore's model."""
    assert argv[0] == "aws"
    client = session.client(argv[1])
    operation = client.meta.service_model.operation_model(
        next(op for op in client.meta.service_model.operation_names if xform_name(op, "-") == argv[2])
    )
    members = {xform_name(name, "-"): (name, shape) for name, shape in operation.input_shape.members.items()}
    params: dict[str, Any] = {}
    args = iter(argv[3:])
    for option in args:
        assert option.startswith("--"), f"unexpected argument {option!r} in {argv}"
        key = option[2:]
        if key.startswith("no-") and key[3:] in members and members[key[3:]][1].type_name == "boolean":
            params[members[key[3:]][0]] = False
            continue
        assert key in members, f"`{' '.join(argv[:3])}` has no option --{key}"
        name, shape = members[key]
        if shape.type_name == "boolean":
            params[name] = True
            continue
        value = next(args)
        if "$(" in value:
            # A command substitution in the guide (generating a secret): run it as the shell would.
            value = subprocess.run(
                ["bash", "-c", f'printf %s "{value}"'], capture_output=True, text=True, check=True
            ).stdout
        params[name] = json.loads(value) if shape.type_name in ("list", "structure", "map") else value
    return client, operation.name, params


def _send(argv: list[str], session: boto3.session.Session) -> Any:
    client, operation, params = _as_request(argv, session)
    return getattr(client, xform_name(operation))(**params)


@pytest.fixture
def aws(offline_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        # The region of the queue ARN in the guide's example.
        yield boto3.session.Session(region_name="eu-west-1")


SECRET_PARAMETERS = ("MeetStreamApiKeyParam", "WebhookSecretParam", "WorkspaceSigningSecretParam")


def test_the_ssm_commands_store_secrets_meetpilot_reads(aws: boto3.session.Session, template: dict[str, Any]) -> None:
    defaults = {name: template["Parameters"][name]["Default"] for name in SECRET_PARAMETERS}
    oauth = {name: template["Parameters"][name]["Default"] for name in OAUTH_PARAMETERS}
    commands = _commands(("aws", "ssm", "put-parameter"))
    first: dict[str, str] = {}
    for argv in commands:
        _, _, params = _as_request(argv, aws)
        if params["Name"] in oauth.values():
            # The app's OAuth clients: JSON with the fields the grants adapter reads, and fake values.
            value = json.loads(params["Value"])
            wanted = {"client_id", "client_secret"} | ({"tenant"} if "microsoft" in params["Name"] else set())
            assert set(value) == wanted and all(
                any(m in v for m in FAKE_MARKERS) or v == "common" for v in value.values()
            )
            continue
        assert params["Name"] in defaults.values(), f"{params['Name']} is not a name the template uses"
        assert params["Type"] == "SecureString"
        # Literal values in the guide are obviously fake; real ones are generated on the spot.
        literal = argv[argv.index("--value") + 1]
        assert "$(" in literal or any(m in literal for m in FAKE_MARKERS), f"{literal!r} looks like a real secret"
        _send(argv, aws)
        first.setdefault(params["Name"], params["Value"])
    assert set(first) == set(defaults.values()), "the guide must create all three secrets"

    ssm = aws.client("ssm")
    stored = ssm.get_parameter(Name=defaults["MeetStreamApiKeyParam"])["Parameter"]
    assert stored["Type"] == "SecureString"
    secrets = SsmSecrets(
        ssm,
        api_key_param=defaults["MeetStreamApiKeyParam"],
        webhook_secret_param=defaults["WebhookSecretParam"],
        signing_secret_param=defaults["WorkspaceSigningSecretParam"],
    )
    assert secrets.api_key() == first[defaults["MeetStreamApiKeyParam"]]
    generated = first[defaults["WebhookSecretParam"]]
    assert len(generated) >= 32 and "$(" not in generated
    # The last two commands are the rotations: each secret's new value first, the old one still accepted.
    assert secrets.token_secrets() == ("NEW-SECRET-PLACEHOLDER", "OLD-SECRET-PLACEHOLDER")
    assert secrets.signing_secrets() == ("NEW-SIGNING-SECRET-PLACEHOLDER", "OLD-SIGNING-SECRET-PLACEHOLDER")


def test_the_event_rule_routes_transcript_ready_events(aws: boto3.session.Session) -> None:
    commands = _commands(("aws", "events"))
    assert [argv[2] for argv in commands] == ["put-rule", "put-targets"]
    _, _, targets = _as_request(commands[1], aws)
    queue_name = targets["Targets"][0]["Arn"].rsplit(":", 1)[1]
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    for argv in commands:
        _send(argv, aws)

    publisher = EventBridgePublisher(aws.client("events"), "default")
    detail = {"schema_version": "1", "event_id": "e1", "session_id": "s1", "bot_id": "b1"}
    publisher.publish(
        [
            {"detail_type": "SessionStatusChanged", "detail": {**detail, "event_id": "e0"}},
            {"detail_type": "TranscriptReady", "detail": detail},
        ]
    )
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    delivered = [json.loads(m["Body"]) for m in got]
    assert [(e["source"], e["detail-type"], e["detail"]["event_id"]) for e in delivered] == [
        ("meetpilot", "TranscriptReady", "e1")
    ]


# --- samconfig.example.toml --------------------------------------------------------------------------------


def _overrides(config: dict[str, Any]) -> list[str]:
    return config["default"]["deploy"]["parameters"]["parameter_overrides"]


def _intended(entries: list[str]) -> dict[str, str]:
    # What each entry means to a reader: KEY=VALUE, with the quotes around a value removed.
    pairs = (entry.split("=", 1) for entry in entries)
    return {key: value[1:-1] if value.startswith('"') and value.endswith('"') else value for key, value in pairs}


def test_samconfig_example_has_every_template_parameter_with_its_default(template: dict[str, Any]) -> None:
    config = tomllib.loads(SAMCONFIG_EXAMPLE.read_text())
    values = _intended(_overrides(config))
    parameters = template["Parameters"]
    assert sorted(values) == sorted(parameters), (
        "samconfig.example.toml and template.yaml name different parameters: "
        f"missing {sorted(set(parameters) - set(values))}, unknown {sorted(set(values) - set(parameters))}"
    )
    for name, spec in parameters.items():
        value = values[name]
        assert value == str(spec.get("Default", "")), f"{name}: {value!r} is not the template's default"
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], name
        if "AllowedPattern" in spec and value:
            assert re.fullmatch(spec["AllowedPattern"], value), name
        if spec.get("Type") == "Number":
            assert spec.get("MinValue", float("-inf")) <= float(value) <= spec.get("MaxValue", float("inf")), name
    assert config["default"]["build"]["parameters"]["build_in_source"] is True


def test_samconfig_capabilities_are_enough_for_the_template(translated: dict[str, Any]) -> None:
    config = tomllib.loads(SAMCONFIG_EXAMPLE.read_text())
    assert config["default"]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
    # CAPABILITY_IAM covers IAM resources with generated names; a fixed name needs CAPABILITY_NAMED_IAM.
    named = [
        logical_id
        for logical_id, resource in translated["Resources"].items()
        if resource["Type"].startswith("AWS::IAM::")
        and {"RoleName", "UserName", "GroupName", "ManagedPolicyName"} & set(resource.get("Properties", {}))
    ]
    assert not named, f"named IAM resources need CAPABILITY_NAMED_IAM in samconfig.example.toml: {named}"


_SAM_PARSE = """
import json, sys
from samcli.cli.types import CfnParameterOverridesType
print(json.dumps(CfnParameterOverridesType().convert(json.loads(sys.argv[1]), None, None)))
"""


def test_sam_reads_the_example_parameter_overrides_as_meant() -> None:
    _need_sam()
    entries = _overrides(tomllib.loads(SAMCONFIG_EXAMPLE.read_text()))
    proc = subprocess.run(
        [str(SAM_VENV / "bin" / "python"), "-c", _SAM_PARSE, json.dumps(entries)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_offline_env(),
        check=True,
    )
    assert json.loads(proc.stdout) == _intended(entries)
