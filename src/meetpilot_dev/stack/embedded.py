"""The embedded local stack: AWS emulator, the template's resources, gateway, queue feeders and the
MeetStream simulator, all on 127.0.0.1 in one process, running the same handler code as Lambda.
"""

from __future__ import annotations

import json
import logging
import secrets as token_source
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import boto3

from meetpilot.app.messages import SubmitMeeting
from meetpilot.composition import Container, use_container
from meetpilot.domain.calendar import CalendarKind, OAuthClient
from meetpilot.domain.clock import Clock, SystemClock
from meetpilot.domain.meeting import meeting_key
from meetpilot.handlers.observability import logger
from meetpilot.settings import Settings
from meetpilot_dev.fakes.google_calendar import FakeGoogleCalendar
from meetpilot_dev.fakes.microsoft_graph import FakeMicrosoftGraph
from meetpilot_dev.simulator import Simulator, SimulatorConfig
from meetpilot_dev.stack import aws_call_log
from meetpilot_dev.stack.emulator import AwsEmulator
from meetpilot_dev.stack.event_tap import EventTap
from meetpilot_dev.stack.gateway import Gateway, GatewayRoute
from meetpilot_dev.stack.invoke import load_handler
from meetpilot_dev.stack.resources import create_stack_resources
from meetpilot_dev.stack.scheduler_runner import SchedulerRunner, SchedulerThread, rate_schedules_from_template
from meetpilot_dev.stack.sigv4 import SigV4Verifier
from meetpilot_dev.stack.sqs_runner import PollerThread, QueueFeeder
from meetpilot_dev.stack.stream_runner import StreamFeeder, StreamPollerThread
from meetpilot_dev.stack.template import http_routes, load_template, sqs_event_sources, stream_event_sources

REGION = "us-east-1"
# The emulator's dummy credentials; the gateway checks SigV4 signatures made with them. The key
# id is random per process: the emulator serves only requests made with it (see local/emulator.py).
LOCAL_ACCESS_KEY = "LOCAL" + token_source.token_hex(8).upper()
LOCAL_SECRET_KEY = "local"  # noqa: S105
SIM_API_KEY_LENGTH = 24
# How long stop() waits for a poller to finish the batch it holds (a long transcript takes seconds).
POLLER_STOP_SECONDS = 120.0
# Every function's pollers, the stream and scheduler runners, the gateway and a bench's own threads
# share the stack's clients: room for all of them, so no call waits for or reopens a connection.
STACK_POOL_CONNECTIONS = 64
_COUNT_ATTRIBUTES = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                     "ApproximateNumberOfMessagesDelayed")  # fmt: skip


class QueueCount(NamedTuple):
    """One queue's messages: waiting, received and not yet deleted, delayed (a retry's wait)."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed

    def describe(self) -> str:
        parts = [f"{n} {label}" for n, label in zip(self, ("waiting", "in flight", "delayed"), strict=True) if n]
        return ", ".join(parts) or "empty"


@dataclass
class StackOptions:
    transcript_provider: str | None = "deepgram"
    lead_time_seconds: int = 600
    schedule_margin_seconds: int = 60
    # PROVIDER_CREATE_RATE for the functions (None: the template's default).
    provider_create_rate: float | None = None
    scheduler_interval_seconds: float = 0.5
    # Shorter visibility timeouts than the template's, so failed records return in seconds.
    queue_visibility_seconds: int | None = None
    time_scale: float = 1.0  # see Settings.time_scale
    pollers_per_queue: int = 3
    speed: float = 600.0  # simulator speed: a 30-minute meeting lasts 3 s
    background_pollers: bool = True
    prefix: str = "meetpilot-local"
    simulator_overrides: dict[str, Any] = field(default_factory=dict)
    quiet_logs: bool = True
    # Start the local fake of Google Calendar and point the calendar functions at it.
    google_fake: bool = False
    # Start the local fake of Microsoft's login and Graph endpoints and point the functions at it.
    microsoft_fake: bool = False
    # LIVE_TRANSCRIPTS for the functions: "auto" (streaming providers), "true" or "false".
    live_transcripts: str = "auto"
    # The SAM template the stack is built from (None: $MEETPILOT_TEMPLATE, else ./template.yaml).
    template: Path | None = None


class LocalStack:
    """Start with ``start()``, stop with ``stop()`` (or use as a context manager)."""

    def _rate_env(self) -> dict[str, float]:
        rate = self.options.provider_create_rate
        return {} if rate is None else {"PROVIDER_CREATE_RATE": rate}

    def __init__(self, options: StackOptions | None = None, *, clock: Clock | None = None) -> None:
        self.options = options or StackOptions()
        self.clock = clock or SystemClock()
        self.template = load_template(self.options.template)
        self.api_key = "ms_local_" + token_source.token_hex(SIM_API_KEY_LENGTH // 2)
        self.webhook_secret = token_source.token_urlsafe(32)
        self.signing_secret = token_source.token_urlsafe(32)  # what MeetStream would show for a workspace webhook
        # The app's OAuth clients at the providers' fakes, stored as the operator stores them in SSM.
        self.oauth_clients = {
            CalendarKind.GOOGLE: OAuthClient(
                client_id=f"{token_source.token_hex(6)}-local.apps.googleusercontent.com",
                client_secret="GOCSPX-local-" + token_source.token_urlsafe(18),
            ),
            CalendarKind.MICROSOFT: OAuthClient(
                client_id=str(uuid.uuid4()),
                client_secret="local~" + token_source.token_urlsafe(24),
                tenant="common",
            ),
        }
        self._moto: Any = None
        self.aws_endpoint = ""
        self.gateway: Gateway | None = None
        self.simulator: Any = None
        self.google: Any = None  # the fake Google Calendar, when StackOptions.google_fake
        self.graph: Any = None  # the fake Microsoft Graph, when StackOptions.microsoft_fake
        self.container: Container | None = None
        self.resources: Any = None
        self.feeders: dict[str, QueueFeeder] = {}
        # The table's stream, read as Lambda's event source mapping reads it, feeding the publisher.
        self.stream_feeders: dict[str, StreamFeeder] = {}
        self._pollers: list[PollerThread | SchedulerThread | StreamPollerThread] = []
        self.scheduler_runner: SchedulerRunner | None = None
        self.handler_errors: list[BaseException] = []
        self.event_tap: Any = None  # the published events, read back through a rule to a queue
        self._errors_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the servers' access lines say nothing useful
        if self.options.quiet_logs:
            logger.setLevel(logging.WARNING)
        self._moto = AwsEmulator(access_key=LOCAL_ACCESS_KEY)
        self.aws_endpoint = self._moto.start()
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_ACCESS_KEY, aws_secret_access_key=LOCAL_SECRET_KEY, region_name=REGION
        )
        self.boto_session = session
        aws_call_log.watch(self)  # an open aws_call_log.recording() sees what each function calls
        self.resources = create_stack_resources(
            {
                name: session.client(name, endpoint_url=self.aws_endpoint)
                for name in ("dynamodb", "sqs", "s3", "scheduler", "kms")
            },
            prefix=self.options.prefix,
            template=self.template,
        )
        if self.options.queue_visibility_seconds is not None:
            sqs_admin = session.client("sqs", endpoint_url=self.aws_endpoint)
            for url in self.resources.queue_urls.values():
                sqs_admin.set_queue_attributes(
                    QueueUrl=url, Attributes={"VisibilityTimeout": str(self.options.queue_visibility_seconds)}
                )
        ssm = session.client("ssm", endpoint_url=self.aws_endpoint)
        settings_env = Settings()
        ssm.put_parameter(Name=settings_env.api_key_param, Value=self.api_key, Type="SecureString", Overwrite=True)
        ssm.put_parameter(
            Name=settings_env.webhook_secret_param, Value=self.webhook_secret, Type="SecureString", Overwrite=True
        )
        ssm.put_parameter(
            Name=settings_env.signing_secret_param, Value=self.signing_secret, Type="SecureString", Overwrite=True
        )
        for kind, name in (
            (CalendarKind.GOOGLE, settings_env.google_oauth_client_param),
            (CalendarKind.MICROSOFT, settings_env.microsoft_oauth_client_param),
        ):
            client = self.oauth_clients[kind]
            value = {"client_id": client.client_id, "client_secret": client.client_secret}
            if client.tenant is not None:
                value["tenant"] = client.tenant
            ssm.put_parameter(Name=name, Value=json.dumps(value), Type="SecureString", Overwrite=True)

        sim_config = SimulatorConfig(
            api_keys=(self.api_key,), speed=self.options.speed, **self.options.simulator_overrides
        )
        self.simulator = Simulator(sim_config, clock=self.clock)
        sim_url = self.simulator.start()

        self.gateway = Gateway(
            [
                GatewayRoute(r.method.upper(), r.path, r.handler, r.function_logical_id, r.authorizer)
                for r in http_routes(self.template)
            ],
            # Signed with the emulator's credentials, as a deployed API checks the caller's IAM ones.
            iam=SigV4Verifier({LOCAL_ACCESS_KEY: LOCAL_SECRET_KEY}, region=REGION),
        )
        gateway_url = self.gateway.start()
        google_env: dict[str, str] = {}
        if self.options.google_fake:
            self.google = FakeGoogleCalendar(clock=self.clock)
            self.google.start()
            google_client = self.oauth_clients[CalendarKind.GOOGLE]
            self.google.add_client(google_client.client_id, google_client.client_secret)
            google_env = {"GOOGLE_CALENDAR_API_BASE": self.google.api_base, "GOOGLE_TOKEN_URI": self.google.token_uri}
        if self.options.microsoft_fake:
            self.graph = FakeMicrosoftGraph(clock=self.clock)
            self.graph.start()
            microsoft_client = self.oauth_clients[CalendarKind.MICROSOFT]
            self.graph.add_client(
                microsoft_client.client_id, microsoft_client.client_secret, tenant=microsoft_client.tenant or "common"
            )
            google_env |= {"MICROSOFT_LOGIN_BASE": self.graph.login_base, "MICROSOFT_GRAPH_BASE": self.graph.graph_base}

        # The same variables Lambda gets from the template, resolved to the local resources.
        env = self.resources.environment(
            MEETSTREAM_BASE_URL=sim_url,
            PUBLIC_BASE_URL=gateway_url,
            TRANSCRIPT_PROVIDER=self.options.transcript_provider or "none",
            LEAD_TIME_SECONDS=self.options.lead_time_seconds,
            SCHEDULE_MARGIN_SECONDS=self.options.schedule_margin_seconds,
            **self._rate_env(),
            MEETSTREAM_TIMEOUT_SECONDS=5,
            MEETPILOT_TIME_SCALE=self.options.time_scale,
            LIVE_TRANSCRIPTS=self.options.live_transcripts,
            FEED_ALLOW_NETWORKS="127.0.0.1/32",  # the fake feeds; never set in the deployed template
            **google_env,
        )
        settings = Settings.from_env(env)
        self.container = Container(
            settings,
            clock=self.clock,
            boto_session=session,
            endpoint_url=self.aws_endpoint,
            max_pool_connections=STACK_POOL_CONNECTIONS,
        )
        use_container(self.container)

        self.event_tap = EventTap.create(
            self.container.client("events"),
            self.container.client("sqs"),
            bus=settings.event_bus_name,
            queue_name=f"{self.options.prefix}-published-events",
        )

        sqs = self.container.client("sqs")
        self.scheduler_runner = SchedulerRunner(
            self.container.client("scheduler"),
            sqs,
            group=settings.require("schedule_group"),
            clock=self.clock,
            rate_schedules=rate_schedules_from_template(self.template, load_handler),
        )
        if self.options.background_pollers:
            thread = SchedulerThread(self.scheduler_runner, interval_seconds=self.options.scheduler_interval_seconds)
            thread.start()
            self._pollers.append(thread)
        queue_urls = self.resources.queue_urls
        for source in sqs_event_sources(self.template):
            feeder = QueueFeeder(
                sqs,
                queue_urls[source.queue_logical_id],
                load_handler(source.handler),
                function_name=source.function_logical_id,
                batch_size=source.batch_size,
                on_error=self._record_error,
            )
            self.feeders[source.function_logical_id] = feeder
            if self.options.background_pollers:
                # Lambda runs several batches of one queue at once (up to MaximumConcurrency).
                for _ in range(min(self.options.pollers_per_queue, source.maximum_concurrency or 1000)):
                    poller = PollerThread(feeder)
                    poller.start()
                    self._pollers.append(poller)
        streams = self.container.client("dynamodbstreams")
        for stream_source in stream_event_sources(self.template):
            failure_queue = stream_source.on_failure_queue_logical_id
            stream_feeder = StreamFeeder(
                streams,
                self.resources.table_stream_arn,
                load_handler(stream_source.handler),
                source=stream_source,
                sqs=sqs,
                failure_queue_url=self.resources.url(failure_queue) if failure_queue else None,
                on_error=self._record_error,
            )
            self.stream_feeders[stream_source.function_logical_id] = stream_feeder
            if self.options.background_pollers:
                stream_poller = StreamPollerThread(stream_feeder)
                stream_poller.start()
                self._pollers.append(stream_poller)
        return self

    def stop(self) -> None:
        # Inward, in the order work flows: first whatever invokes handlers (pollers, scheduler),
        # each finishing the batch it holds, then the simulator (no more webhooks), the gateway
        # and, last, the emulator every handler writes to. A poller still mid-batch when the
        # emulator went away would log its records as failed.
        for poller in self._pollers:
            poller.stop()
        for poller in self._pollers:
            poller.join(timeout=POLLER_STOP_SECONDS)
        self._pollers.clear()
        if self.simulator is not None:
            self.simulator.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.google is not None:
            self.google.stop()
            self.google = None
        if self.graph is not None:
            self.graph.stop()
            self.graph = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        use_container(None)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record_error(self, exc: BaseException) -> None:
        with self._errors_lock:
            self.handler_errors.append(exc)

    # --- using it -------------------------------------------------------------------------------

    def submit_meeting(
        self, url: str, start: datetime, *, end: datetime | None = None, title: str = "", user_id: str | None = None
    ) -> str:
        """Queue an ad-hoc meeting for dispatch, as the HTTP API or CLI does; return its meeting key."""
        assert self.container is not None
        submit = SubmitMeeting.of(url, start, end=end, title=title, user_id=user_id)
        self.container.dispatch_queue.send(submit.to_body())
        return meeting_key(url, start)

    def published_events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """What meetpilot has published to EventBridge for every write so far (envelopes, oldest
        first): the stream is read up to its end first, so no write's events are still on the way."""
        assert self.event_tap is not None
        for feeder in self.stream_feeders.values():
            feeder.drain()
        events = self.event_tap.drain()
        return [e for e in events if detail_type is None or e.get("detail-type") == detail_type]

    def google_consent(self, primary: str | None = None) -> str:
        """A refresh token for the stack's Google OAuth client, as a user's consent gives the app one
        (``primary``: the user's own calendar at the fake)."""
        assert self.google is not None, "start the stack with google_fake=True"
        return str(self.google.consent(self.oauth_clients[CalendarKind.GOOGLE].client_id, primary=primary))

    def microsoft_consent(self, email: str) -> str:
        """A refresh token for the stack's Microsoft application, as a user's consent gives the app one
        (``email``: the user's mailbox at the fake, created when new)."""
        assert self.graph is not None, "start the stack with microsoft_fake=True"
        self.graph.add_user(email)
        return str(self.graph.grant(self.oauth_clients[CalendarKind.MICROSOFT].client_id, email))

    def put_secret(self, name: str, value: str) -> None:
        """Store an SSM SecureString in the emulator (an OAuth client, say)."""
        assert self.container is not None
        self.container.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

    def session_for(self, key: str) -> Any:
        assert self.container is not None
        repo = self.container.repository
        meeting = repo.get_meeting(key)
        if meeting is None or meeting.session_id is None:
            return None
        return repo.get_session(meeting.session_id)

    def queue_counts(self) -> dict[str, QueueCount]:
        """Messages in each main queue, by the function it feeds."""
        assert self.container is not None
        sqs = self.container.client("sqs")
        counts = {}
        for name, feeder in self.feeders.items():
            attrs = sqs.get_queue_attributes(QueueUrl=feeder.queue_url, AttributeNames=list(_COUNT_ATTRIBUTES))[
                "Attributes"
            ]
            counts[name] = QueueCount(*(int(attrs.get(k, 0)) for k in _COUNT_ATTRIBUTES))
        return counts

    def quiet(self) -> bool:
        """No message waiting or in flight in any main queue (delayed retries count as in flight),
        and the table's stream read to its end."""
        if any(count.total for count in self.queue_counts().values()):
            return False
        return not any(feeder.behind() for feeder in self.stream_feeders.values())

    def drain(self, rounds: int = 50) -> int:
        """Process every queue until all are empty (for tests without background pollers)."""
        total = 0
        for _ in range(rounds):
            fired = self.scheduler_runner.fire_due() if self.scheduler_runner else 0
            got = fired + sum(feeder.drain() for feeder in self.feeders.values())
            got += sum(feeder.drain() for feeder in self.stream_feeders.values())
            total += got
            if not got:
                break
        return total

    def environment(self) -> dict[str, str]:
        """The variables that point the AWS CLI or boto3 at the emulator."""
        assert self.resources is not None
        env = {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
        env.update(self.resources.environment())
        return env
