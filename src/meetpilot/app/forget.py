"""Forget a bot: erase its transcripts in S3, its session and event history in DynamoDB, and the
provider's copy, reporting each step (a data-subject request must be answerable precisely)."""

from __future__ import annotations

from dataclasses import dataclass

from meetpilot.app.ports import BotProvider, Repository, TranscriptStore
from meetpilot.app.transcripts import transcript_prefix
from meetpilot.domain.clock import Clock
from meetpilot.errors import NotFound, ProviderError, ProviderNotFound


@dataclass(frozen=True)
class ForgetReport:
    bot_id: str
    session_id: str | None
    transcript_objects_deleted: int
    session_deleted: bool
    provider: str  # what the provider said: "deleted N objects", "already gone", or the error

    def lines(self) -> list[str]:
        return [
            f"bot {self.bot_id}",
            f"  transcripts in S3: {self.transcript_objects_deleted} object versions deleted",
            f"  session and event history: {'deleted' if self.session_deleted else 'none found'}",
            f"  provider's copy: {self.provider}",
        ]


def forget_bot(
    bot_id: str, *, repo: Repository, store: TranscriptStore, provider: BotProvider, clock: Clock
) -> ForgetReport:
    session = repo.find_session_by_bot(bot_id)
    if session is None:
        raise NotFound(f"no session for bot {bot_id}; check the id with 'meetpilot sessions list'")
    deleted_objects = 0
    prefixes = {key.rsplit("/", 1)[0] + "/" for key in (session.transcript.get("keys") or {}).values()}
    if not prefixes:
        meeting = repo.get_meeting(session.meeting_key)
        prefixes = {transcript_prefix(session, meeting.start if meeting else None, clock.now())}
    for prefix in sorted(prefixes):
        deleted_objects += store.delete_prefix(prefix)
    try:
        provider_said = f"deleted {provider.delete_bot_data(bot_id)} objects"
        provider_done = True
    except ProviderNotFound:
        provider_said, provider_done = "already gone", True
    except ProviderError as exc:
        provider_said, provider_done = f"not deleted: {exc} (run forget again later)", False
    # The session is what maps the bot to its data: keep it until the provider's copy is gone,
    # so that running forget again can finish the job.
    session_deleted = repo.delete_session(session.session_id) if provider_done else False
    return ForgetReport(bot_id, session.session_id, deleted_objects, session_deleted, provider_said)
