"""The composition root: builds clients and adapters from settings, lazily, once per warm instance.

Handlers ask ``container()`` for what they need; tests and the local stack install their own
container with ``use_container``. Nothing is built until first used, so a handler pays at cold
start only for the clients its own path touches. For the same reason each property imports its
adapter inside itself: this module alone imports in 0.039 s (13 MB), with every adapter and boto3
up front in 0.511 s (66 MB), medians of 7 fresh processes on 2 cores; the properties say which port
each one is, for the type checker, without importing it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from meetpilot.domain.clock import Clock, SystemClock
from meetpilot.settings import Settings

if TYPE_CHECKING:
    from meetpilot.adapters.public_http import DestinationGuard
    from meetpilot.adapters.session_listing import DynamoSessionListing
    from meetpilot.app.calendar_sync import GraphSubscriptions, SyncDeps
    from meetpilot.app.dispatch import DispatchConfig, RateGuard
    from meetpilot.app.ports import (
        BotProvider,
        CalendarGrants,
        DispatchScheduler,
        EventPublisher,
        GoogleCalendars,
        IcsFeeds,
        LiveSegmentStore,
        MessageQueue,
        MicrosoftCalendars,
        Secrets,
        Storage,
        TranscriptStore,
    )
    from meetpilot.app.queries import TranscriptLinks
    from meetpilot.app.workers.followups import FollowUpStep
    from meetpilot.app.workers.transcripts import TranscriptPolicy

# httpx imports its command-line tool (click, rich, pygments: 40-60 ms at cold start) whenever those
# happen to be installed, as they are beside the local stack's CLI; the service never runs it. An
# empty entry makes that import fail as it does where they are not installed, and httpx carries on.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

_BOTO_CONFIG_KW: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 5},
    "connect_timeout": 3,
    "read_timeout": 15,
}


class Container:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        boto_session: Any = None,
        endpoint_url: str | None = None,
        max_pool_connections: int | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.clock: Clock = clock or SystemClock()
        # The local stack passes its own session and emulator endpoint; Lambda uses the defaults.
        self._boto_session = boto_session
        self._endpoint_url = endpoint_url
        # A Lambda process serves one event at a time and botocore's pool of 10 is plenty; the local
        # stack runs every function's pollers on one container, and past 10 threads botocore drops
        # and reopens connections (each a new server thread in the emulator).
        self._pool = {"max_pool_connections": max_pool_connections} if max_pool_connections else {}
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """A boto3 client, created on first use and reused (botocore retries in standard mode)."""
        with self._lock:
            if service not in self._clients:
                import boto3
                from botocore.config import Config

                if self._boto_session is None:
                    # One session for every client: its loader caches the endpoint, partition and
                    # retry data, so a cold start's second and third clients cost a quarter of the first.
                    self._boto_session = boto3.session.Session()
                session = self._boto_session
                # Presigned transcript links must be SigV4 (SigV2 links are refused in newer regions).
                extra = {"signature_version": "s3v4"} if service == "s3" else {}
                self._clients[service] = session.client(
                    service, config=Config(**_BOTO_CONFIG_KW, **self._pool, **extra), endpoint_url=self._endpoint_url
                )
            return self._clients[service]

    def lazy_client(self, service: str) -> Any:
        """A stand-in for ``client(service)`` that creates the client when first used: an adapter
        built for one path of a use case (the provider's SSM secrets, a queue a reconcile may send
        to, the bucket a transcript that is not ready never reaches) then costs no client creation
        (15-60 ms each at cold start) on the paths that never call it."""
        return _LazyClient(self, service)

    @cached_property
    def repository(self) -> Storage:
        from meetpilot.adapters.dynamodb import DynamoRepository

        # The meetings adapter reads the reconciler's look-again time from the configured lead time.
        return DynamoRepository(
            self.client("dynamodb"),
            self.settings.require("table_name"),
            lead_time=timedelta(seconds=self.settings.lead_time_seconds),
        )

    @cached_property
    def secrets(self) -> Secrets:
        def build() -> Secrets:
            from meetpilot.adapters.ssm import SsmSecrets

            return SsmSecrets(
                self.client("ssm"),
                api_key_param=self.settings.api_key_param,
                webhook_secret_param=self.settings.webhook_secret_param,
                signing_secret_param=self.settings.signing_secret_param,
            )

        # Built when a secret is first read: Powertools Parameters imports boto3 and its provider
        # touches the client, which a path that never reads a secret should not pay for.
        return cast("Secrets", _BuiltOnFirstUse(build))

    @cached_property
    def provider(self) -> BotProvider:
        secrets = self.secrets

        def build() -> BotProvider:
            from meetpilot.adapters.meetstream import MeetStreamProvider

            return MeetStreamProvider(
                secrets.api_key,
                base_url=self.settings.meetstream_base_url,
                timeout=self.settings.provider_timeout_seconds,
            )

        # Built on its first call: the SDK and httpx (about 100 modules) and the SSM client are paid
        # only by a path that reaches the provider, not by a reconcile with nothing due.
        return cast("BotProvider", _BuiltOnFirstUse(build))

    @cached_property
    def transcript_store(self) -> TranscriptStore:
        from meetpilot.adapters.s3 import S3TranscriptStore

        return S3TranscriptStore(self.lazy_client("s3"), self.settings.require("transcript_bucket"))

    @property
    def transcript_links(self) -> TranscriptLinks:
        """Download links to stored transcripts: the same bucket, seen through the port that signs."""
        return self.transcript_store  # type: ignore[return-value]  # S3TranscriptStore is both ports

    def _queue(self, setting: str) -> MessageQueue:
        from meetpilot.adapters.sqs import SqsQueue

        return SqsQueue(self.lazy_client("sqs"), self.settings.require(setting))

    @cached_property
    def dispatch_queue(self) -> MessageQueue:
        return self._queue("dispatch_queue_url")

    @cached_property
    def bot_events_queue(self) -> MessageQueue:
        return self._queue("bot_events_queue_url")

    @cached_property
    def transcript_queue(self) -> MessageQueue:
        return self._queue("transcript_queue_url")

    @cached_property
    def dispatch_scheduler(self) -> DispatchScheduler:
        from meetpilot.adapters.dispatch_plan import DynamoSlotBook
        from meetpilot.adapters.scheduler import EventBridgeDispatchScheduler

        rate = self.settings.provider_create_rate or None
        return EventBridgeDispatchScheduler(
            self.lazy_client("scheduler"),
            group=self.settings.require("schedule_group"),
            target_arn=self.settings.require("dispatch_queue_arn"),
            role_arn=self.settings.require("scheduler_role_arn"),
            dead_letter_arn=self.settings.dispatch_dlq_arn or None,
            plan=DynamoSlotBook(self.client("dynamodb"), self.settings.require("table_name")) if rate else None,
            create_rate_per_second=rate,
        )

    @cached_property
    def rate_guard(self) -> RateGuard | None:
        """The provider's rate state and the gate dispatchers keep to while it answers 429."""
        if not self.settings.provider_create_rate:
            return None
        from meetpilot.adapters.dispatch_plan import DynamoProviderRate, DynamoSlotBook
        from meetpilot.app.dispatch import RateGuard

        table = self.settings.require("table_name")
        return RateGuard(
            rate=DynamoProviderRate(self.client("dynamodb"), table),
            gate=DynamoSlotBook(self.client("dynamodb"), table, kind="GATE"),
        )

    @cached_property
    def dispatch_config(self) -> DispatchConfig:
        return self._dispatch_config(self.settings.require("public_base_url"))

    def _dispatch_config(self, public_base_url: str) -> DispatchConfig:
        from meetpilot.app.dispatch import DispatchConfig

        return DispatchConfig(
            bot_name=self.settings.bot_name,
            public_base_url=public_base_url,
            transcript_provider=self.settings.transcript_provider,
            lead_time_seconds=self.settings.lead_time_seconds,
            schedule_margin_seconds=self.settings.schedule_margin_seconds,
            create_rate_per_second=self.settings.provider_create_rate or None,
            lease_seconds=self.settings.scaled(90),
            remove_bot_on_cancel=self.settings.remove_bot_on_cancel,
            live_transcripts=self.settings.wants_live_transcripts,
        )

    @cached_property
    def event_publisher(self) -> EventPublisher:
        """For the stream publisher alone: every other function's events come from its writes."""
        from meetpilot.adapters.eventbridge import EventBridgePublisher

        return EventBridgePublisher(self.lazy_client("events"), self.settings.event_bus_name)

    @cached_property
    def live_segments(self) -> LiveSegmentStore:
        from meetpilot.adapters.live_segments import DynamoLiveSegments

        return DynamoLiveSegments(self.client("dynamodb"), self.settings.require("table_name"))

    # --- calendars ----------------------------------------------------------------------------

    @cached_property
    def calendar_sync_queue(self) -> MessageQueue:
        return self._queue("calendar_sync_queue_url")

    @cached_property
    def ics_feeds(self) -> IcsFeeds:
        from meetpilot.adapters.ics import IcsFeedClient, IcsFeeds

        return IcsFeeds(IcsFeedClient(guard=self.feed_guard))

    @cached_property
    def feed_guard(self) -> DestinationGuard:
        """What a URL a user gave may reach: public addresses, and the allow-list (local stack only)."""
        from meetpilot.adapters.public_http import AddressPolicy, DestinationGuard

        return DestinationGuard(AddressPolicy.allowing(self.settings.feed_allow_networks))

    @cached_property
    def google_calendars(self) -> GoogleCalendars:
        from meetpilot.adapters.google_calendar import GoogleCalendarGateway

        return GoogleCalendarGateway(
            self.calendar_grants,
            api_base=self.settings.google_api_base,
            token_uri=self.settings.google_token_uri,
            clock=self.clock,
        )

    @cached_property
    def calendar_grants(self) -> CalendarGrants:
        """The app's OAuth clients (SSM) and the calendars' sealed refresh tokens (KMS)."""
        from meetpilot.adapters.grants import KmsSsmGrants
        from meetpilot.domain.calendar import CalendarKind

        return KmsSsmGrants(
            self.lazy_client("kms"),
            self.lazy_client("ssm"),
            repo=self.repository,
            key_id=self.settings.require("calendar_grants_key_id"),
            client_params={
                CalendarKind.GOOGLE: self.settings.google_oauth_client_param,
                CalendarKind.MICROSOFT: self.settings.microsoft_oauth_client_param,
            },
        )

    @cached_property
    def microsoft_calendars(self) -> MicrosoftCalendars:
        from meetpilot.adapters.microsoft_calendar import MicrosoftCalendarGateway

        return MicrosoftCalendarGateway(
            self.calendar_grants,
            login_base=self.settings.microsoft_login_base,
            graph_base=self.settings.microsoft_graph_base,
            clock=self.clock,
        )

    @property
    def graph_subscriptions(self) -> GraphSubscriptions | None:
        """Where Graph notifies us (from the public base URL); None where that URL is not set."""
        from meetpilot.app.calendar_sync import GraphSubscriptions, graph_notification_urls

        if not self.settings.public_base_url:
            return None
        import secrets

        notify, lifecycle = graph_notification_urls(self.settings.public_base_url)
        return GraphSubscriptions(notify, lifecycle, new_client_state=lambda: secrets.token_urlsafe(32))

    @cached_property
    def calendar_sync_deps(self) -> SyncDeps:
        from meetpilot.app.calendar_sync import CalendarSyncConfig, SyncDeps

        return SyncDeps(
            repo=self.repository,
            scheduler=self.dispatch_scheduler,
            provider=self.provider,
            dispatch_queue=self.dispatch_queue,
            # Calendar sync only plans dispatches (lead time, margins); callback URLs are built
            # by the dispatcher, so the sync function needs no public URL.
            dispatch_config=self._dispatch_config(self.settings.public_base_url),
            clock=self.clock,
            config=CalendarSyncConfig(lease_seconds=self.settings.scaled(120)),
            graph=self.graph_subscriptions,
        )

    @property
    def google_push_address(self) -> str:
        from meetpilot.app.calendar_sync import push_address

        return push_address(self.settings.require("public_base_url"))

    # --- queue workers ------------------------------------------------------------------------

    def follow_up_step(self, retry_queue: Callable[[], MessageQueue] | None = None) -> FollowUpStep:
        """What a worker's use case needs for its follow-ups; ``retry_queue`` is its own queue."""
        from meetpilot.app.workers.followups import FollowUpStep

        return FollowUpStep(
            repo=self.repository,
            clock=self.clock,
            delay=self.settings.scaled,
            retry_queue=retry_queue,
        )

    @cached_property
    def transcript_policy(self) -> TranscriptPolicy:
        from meetpilot.app.workers.transcripts import TranscriptPolicy

        budget = self.settings.scaled(self.settings.transcript_not_ready_budget_seconds)
        return TranscriptPolicy(
            not_ready_budget=timedelta(seconds=budget),
            retry_base_seconds=self.settings.transcript_retry_base_seconds,
        )

    # --- management API -----------------------------------------------------------------------

    @cached_property
    def session_listing(self) -> DynamoSessionListing:
        from meetpilot.adapters.session_listing import DynamoSessionListing

        return DynamoSessionListing(self.client("dynamodb"), self.settings.require("table_name"))


class _LazyClient:
    """Creates the container's client for ``service`` on first attribute access, then forwards to it."""

    __slots__ = ("_container", "_service")

    def __init__(self, container: Container, service: str) -> None:
        self._container = container
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container.client(self._service), name)


class _BuiltOnFirstUse:
    """Builds an adapter on first attribute access, then forwards to it."""

    __slots__ = ("_build", "_built", "_lock")

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._built: Any = None
        self._lock = threading.Lock()  # records handled side by side build it once

    def __getattr__(self, name: str) -> Any:
        if self._built is None:
            with self._lock:
                if self._built is None:
                    self._built = self._build()
        return getattr(self._built, name)


_current: Container | None = None
_current_lock = threading.Lock()


def container() -> Container:
    """The process-wide container, built from the environment on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Container()
        return _current


def use_container(new: Container | None) -> None:
    """Install a container (tests, local stack); None resets to building from the environment."""
    global _current
    with _current_lock:
        _current = new


@contextmanager
def using_container(new: Container) -> Iterator[Container]:
    """Install ``new`` for the duration of a block, then put back whatever was there (CLI commands
    that run a handler in-process against a stack)."""
    global _current
    with _current_lock:
        previous, _current = _current, new
    try:
        yield new
    finally:
        with _current_lock:
            _current = previous
