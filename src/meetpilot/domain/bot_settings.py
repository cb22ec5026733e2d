"""The bot a meeting gets: settings a user, a calendar and one event can each set, layered over the stack's.

Each level sets only what it names; the rest comes from the level below. The order, highest first:
the owning calendar event's override, that event's calendar, the calendar's user, the stack's
configuration (``DispatchConfig``). The layers are read when the bot is created, so a change made
after a meeting was scheduled still reaches its bot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meetpilot.errors import InvalidInput

# The automatic-leave timeouts MeetStream takes (seconds), as DispatchConfig.automatic_leave names them.
LEAVE_TIMEOUTS = ("waiting_room_timeout", "everyone_left_timeout", "voice_inactivity_timeout")
# Said instead of a provider name to turn transcription off where a lower level turned it on.
NO_TRANSCRIPT = "none"


@dataclass(frozen=True)
class BotSettings:
    """One level's settings; ``None`` (or a timeout left out) inherits from the level below.

    ``transcript_provider`` is a MeetStream provider key, or ``"none"`` for no transcription.
    A recording mode would be one more optional field here, layered the same way.
    """

    bot_name: str | None = None
    transcript_provider: str | None = None
    live_transcripts: bool | None = None
    automatic_leave: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bot_name is not None:
            name = " ".join(self.bot_name.split())
            if not name or len(name) > 100:
                raise InvalidInput("bot_name must be 1 to 100 characters")
            object.__setattr__(self, "bot_name", name)
        if self.transcript_provider is not None:
            provider = self.transcript_provider.strip().lower()
            if not provider or len(provider) > 50 or not provider.replace("_", "").replace("-", "").isalnum():
                raise InvalidInput("transcript_provider must be a provider key such as deepgram, or none")
            object.__setattr__(self, "transcript_provider", provider)
        leave: dict[str, int] = {}
        for name, seconds in dict(self.automatic_leave).items():
            if name not in LEAVE_TIMEOUTS:
                raise InvalidInput(f"automatic_leave.{name} is not a timeout; use {', '.join(LEAVE_TIMEOUTS)}")
            if isinstance(seconds, bool) or not isinstance(seconds, int) or not 10 <= seconds <= 86_400:
                raise InvalidInput(f"automatic_leave.{name} must be whole seconds between 10 and 86400")
            leave[name] = seconds
        object.__setattr__(self, "automatic_leave", dict(sorted(leave.items())))

    @property
    def empty(self) -> bool:
        return self == BotSettings()

    def over(self, below: BotSettings) -> BotSettings:
        """These settings on top of ``below``: what this level names wins, the rest is ``below``'s."""
        return BotSettings(
            bot_name=self.bot_name if self.bot_name is not None else below.bot_name,
            transcript_provider=(
                self.transcript_provider if self.transcript_provider is not None else below.transcript_provider
            ),
            live_transcripts=self.live_transcripts if self.live_transcripts is not None else below.live_transcripts,
            automatic_leave={**below.automatic_leave, **self.automatic_leave},
        )

    def as_dict(self) -> dict[str, Any]:
        """The stored form (only what is set); ``from_dict`` reads it back."""
        out: dict[str, Any] = {
            "bot_name": self.bot_name,
            "transcript_provider": self.transcript_provider,
            "live_transcripts": self.live_transcripts,
        }
        out = {k: v for k, v in out.items() if v is not None}
        if self.automatic_leave:
            out["automatic_leave"] = dict(self.automatic_leave)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> BotSettings:
        if not raw:
            return cls()
        live = raw.get("live_transcripts")
        leave = raw.get("automatic_leave") or {}
        return cls(
            bot_name=raw.get("bot_name"),
            transcript_provider=raw.get("transcript_provider"),
            live_transcripts=bool(live) if live is not None else None,
            automatic_leave={str(k): int(v) for k, v in dict(leave).items()},
        )


@dataclass(frozen=True)
class EffectiveBot:
    """What the bot is created with, once every level is applied; ``source`` says which levels set something."""

    bot_name: str
    transcript_provider: str | None
    live_transcripts: bool
    automatic_leave: Mapping[str, int]
    sources: tuple[str, ...] = ()


def effective_bot(
    layers: list[tuple[str, BotSettings]],
    *,
    bot_name: str,
    transcript_provider: str | None,
    live_transcripts: bool,
    automatic_leave: Mapping[str, int],
) -> EffectiveBot:
    """Apply ``layers`` (highest first, each named: ``"event"``, ``"calendar"``, ``"user"``) over the stack's values."""
    merged = BotSettings()
    for _, settings in reversed(layers):
        merged = settings.over(merged)
    provider = merged.transcript_provider if merged.transcript_provider is not None else transcript_provider
    return EffectiveBot(
        bot_name=merged.bot_name or bot_name,
        transcript_provider=None if provider == NO_TRANSCRIPT else provider,
        live_transcripts=merged.live_transcripts if merged.live_transcripts is not None else live_transcripts,
        automatic_leave={**automatic_leave, **merged.automatic_leave},
        sources=tuple(name for name, settings in layers if not settings.empty),
    )
