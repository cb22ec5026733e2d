"""Finding the meeting link a bot can join in a calendar event, and the canonical form of such a link.

Calendars hide links in many places: a conference entry point, Google's ``hangoutLink``, the location
field, or deep inside an HTML description behind an Outlook "safelinks" redirect. Only links to
platforms a bot can join (Zoom, Microsoft Teams, Google Meet, Webex) count; marketing pages, recording
links and documents on the same domains do not.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from html import unescape
from html.parser import HTMLParser
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

# --- platform recognition ---------------------------------------------------------------------

_ZOOM_HOSTS = ("zoom.us", "zoomgov.com")
_TEAMS_HOSTS = frozenset(
    {
        "teams.microsoft.com",
        "teams.live.com",
        "teams.cloud.microsoft",
        "gov.teams.microsoft.us",
        "dod.teams.microsoft.us",
    }
)
_MEET_HOST = "meet.google.com"

# Zoom meeting numbers are 9 to 11 digits today; any length is accepted, as Zoom itself does.
_ZOOM_JOIN_PATH = re.compile(r"^/(?:j|w|wc/join)/(?P<number>\d+)(?:/|$)", re.IGNORECASE)
_ZOOM_WEB_CLIENT_PATH = re.compile(r"^/wc/(?P<number>\d+)/join(?:/|$)", re.IGNORECASE)
_ZOOM_PERSONAL_PATH = re.compile(r"^/my/(?P<name>[\w.-]+)/?$", re.IGNORECASE)
_TEAMS_MEETUP_PATH = re.compile(r"^/l/meetup-join/(?P<thread>[^/]+)", re.IGNORECASE)
_TEAMS_MEET_PATH = re.compile(r"^/meet/(?P<id>[\w-]+)/?$", re.IGNORECASE)
_MEET_CODE_PATH = re.compile(r"^/(?P<code>[a-z]{3}-[a-z]{4}-[a-z]{3})/?$", re.IGNORECASE)
_WEBEX_ROOM_PATH = re.compile(r"^/(?:[\w-]+/)?(?:meet|join)/[\w.@-]+/?$", re.IGNORECASE)
_WEBEX_JPHP_PATH = re.compile(r"^/(?:[\w-]+/)?j\.php$", re.IGNORECASE)
_WEBEX_JOINSERVICE_PATH = re.compile(r"^/wbxmjs/joinservice/", re.IGNORECASE)

# --- finding links in text --------------------------------------------------------------------

# Characters that never belong to a link found in prose. Zero-width characters sneak into links
# copied out of rich-text mail clients.
_STOP = "\\s<>\"'`\u200b-\u200d\u2060\ufeff"
# A link with a scheme. A {...} group may contain quotes: Teams links often carry an unencoded
# context={"Tid":"...","Oid":"..."} object.
_SCHEMED = rf"https?://(?:\{{[^{{}}\s<>]*\}}|[^{_STOP}{{}}])+"
# A link without a scheme, only for the platforms' own hosts ("zoom.us/j/123" in a location field).
_BARE_HOSTS = (
    r"(?:[a-z0-9-]+\.)*(?:zoom\.us|zoomgov\.com|webex\.com)|meet\.google\.com|teams\.(?:microsoft\.com|live\.com)"
)
_BARE = rf"(?<![\w@./:-])(?:{_BARE_HOSTS})/(?:[^{_STOP}{{}}])+"
_LINK_IN_TEXT = re.compile(rf"(?P<schemed>{_SCHEMED})|(?P<bare>{_BARE})", re.IGNORECASE)

_TRAILING = ".,;:!?*'\""
_PAIRS = {")": "(", "]": "[", "}": "{", ">": "<"}
_LOOKS_LIKE_HTML = re.compile(r"<\s*(?:a\s|br\b|p\b|div\b|span\b|html\b|/\s*\w+\s*>)", re.IGNORECASE)

# A passcode never enters a dedup key (keys become ids, and ids travel in API paths, logs and
# events): the key holds this parameter with a digest of it instead, so links to one meeting with
# two different passcodes still make two keys, as they did when the passcode itself was in it.
_DIGEST_SUFFIX = "-sha256"
_DIGEST_VALUE = re.compile(r"^[0-9a-f]{16}$")

_TRACKING_EXACT = frozenset({"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "_ga", "_gl", "mkt_tok"})
_TRACKING_PREFIXES = ("utm_", "mc_", "_hs", "pk_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def meeting_platform(url: str) -> str | None:
    """``"zoom"``, ``"teams"``, ``"meet"`` or ``"webex"`` when ``url`` joins a meeting there, else None.

    >>> meeting_platform("https://acme.zoom.us/j/85551234567?pwd=x")
    'zoom'
    >>> meeting_platform("https://zoom.us/pricing") is None
    True
    """
    parts = _split(unwrap_redirects(url.strip()))
    if parts is None:
        return None
    return _platform(parts)


def find_meeting_url(
    *,
    conference_data: Mapping[str, object] | None = None,
    hangout_link: str | None = None,
    location: str | None = None,
    description: str | None = None,
) -> str | None:
    """The link a bot should join, looking where calendars put it, most reliable place first.

    Order: the conference's video entry point (Google ``conferenceData``), Google's ``hangoutLink``,
    a link in the location, a link in the description (HTML unescaped, ``<a href>`` targets read,
    tags stripped). Within one field the first joinable link wins. Redirect wrappers (Outlook
    safelinks, Google's ``/url?q=``, Proofpoint) are unwrapped; the result keeps the query the
    platform needs (a Zoom ``pwd``, a Teams ``context``), with unsafe characters percent-encoded.

    >>> find_meeting_url(location="Room 4 / https://acme.zoom.us/j/85551234567?pwd=abc.")
    'https://acme.zoom.us/j/85551234567?pwd=abc'
    """
    for candidate in _video_entry_points(conference_data):
        found = _joinable(candidate)
        if found:
            return found
    if hangout_link:
        found = _joinable(hangout_link)
        if found:
            return found
    for text in (location, description):
        if text:
            for candidate in _links_in(text):
                found = _joinable(candidate)
                if found:
                    return found
    return None


def canonical_meeting_url(url: str) -> str | None:
    """A canonical form of ``url`` for the dedup key, or None when it is not an http(s) URL with a host.

    Two links that join the same meeting map to the same string: host case, default ports, redirect
    wrappers, tracking parameters, fragments and trailing punctuation do not count. Per platform:

    * Zoom: only the meeting number (``/j/``, ``/w/`` and web-client paths are one meeting, on any
      vanity subdomain) and a digest of ``pwd`` (``pwd-sha256``, never the passcode itself);
      personal links ``/my/<name>`` lower-cased.
    * Google Meet: the lower-cased meeting code, no query.
    * Teams: the meeting thread id exactly as written (ids are case-sensitive) with one consistent
      percent-encoding, dropping ``context``, which only says who organised it; for ``/meet/<id>``
      links a digest of the ``p`` passcode (``p-sha256``).
    * Webex: the path, plus ``MTID`` for ``j.php`` links.
    * Anything else: remaining query parameters sorted, path without a trailing slash.
    """
    parts = _split(unwrap_redirects(_trim(url.strip())))
    if parts is None:
        return None
    platform = _platform(parts)
    host = _host(parts)
    path = parts.path
    query = parse_qsl(parts.query, keep_blank_values=True)
    if platform == "zoom":
        base = "zoomgov.com" if _is_under(host, "zoomgov.com") else "zoom.us"
        personal = _ZOOM_PERSONAL_PATH.match(path)
        if personal:
            return f"https://{base}/my/{personal.group('name').lower()}"
        number = _zoom_number(path)
        pwd = _passcode_digest(query, "pwd", f"zoom/{number}", case_sensitive_name=False)
        return urlunsplit(("https", base, f"/j/{number}", urlencode(pwd), ""))
    if platform == "meet":
        match = _MEET_CODE_PATH.match(path)
        assert match is not None  # _platform only says "meet" for a code path
        return f"https://{_MEET_HOST}/{match.group('code').lower()}"
    if platform == "teams":
        meetup = _TEAMS_MEETUP_PATH.match(path)
        if meetup:
            thread = quote(unquote(meetup.group("thread")), safe="-._~")
            return f"https://{host}/l/meetup-join/{thread}"
        meet = _TEAMS_MEET_PATH.match(path)
        assert meet is not None
        passcode = _passcode_digest(query, "p", f"teams/{meet.group('id')}", case_sensitive_name=True)
        return urlunsplit(("https", host, f"/meet/{meet.group('id')}", urlencode(passcode), ""))
    if platform == "webex":
        keep = [("MTID", v) for k, v in query if k.lower() == "mtid"][:1] if _WEBEX_JPHP_PATH.match(path) else []
        return urlunsplit(("https", host, path.rstrip("/"), urlencode(keep), ""))
    netloc = host if parts.port in (None, _DEFAULT_PORTS.get(parts.scheme.lower())) else f"{host}:{parts.port}"
    kept = sorted((k, v) for k, v in query if not _is_tracking(k))
    return urlunsplit(("https", netloc, path.rstrip("/"), urlencode(kept), ""))


def without_passcode(url: str) -> str:
    """``url`` as it may be shown: redirect wrappers undone, a Zoom ``pwd`` or Teams ``p`` passcode
    dropped. Only the bot provider gets the link with its passcode.

    >>> without_passcode("https://acme.zoom.us/j/85551234567?pwd=abc&uname=Jane")
    'https://acme.zoom.us/j/85551234567?uname=Jane'
    """
    unwrapped = unwrap_redirects(_trim(url.strip()))
    parts = _split(unwrapped)
    if parts is None:
        return unwrapped.split("?", 1)[0]  # not a link we can read: show none of its query
    platform = _platform(parts)
    if platform not in ("zoom", "teams"):
        return unwrapped
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if not _is_passcode(platform, k)]
    if len(kept) == len(query):
        return unwrapped
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


def unwrap_redirects(url: str) -> str:
    """Undo link wrappers that mail and calendar clients put around the real link.

    Outlook safelinks (``*.safelinks.protection.outlook.com/?url=``), Google's ``/url?q=`` redirect,
    Proofpoint URL Defense (v2, and v3 links without substitutions) and the Teams web launcher.
    Anything else is returned unchanged.
    """
    current = url
    for _ in range(4):  # wrappers can nest (a safelink around a Google redirect)
        inner = _unwrap_once(current)
        if inner is None:
            return current
        current = _trim(inner.strip())
    return current


# --- internals --------------------------------------------------------------------------------


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if port is not None and not 0 < port < 65536:
        return None
    return parts


def _host(parts: SplitResult) -> str:
    return (parts.hostname or "").rstrip(".")


def _is_under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _zoom_number(path: str) -> str | None:
    match = _ZOOM_JOIN_PATH.match(path) or _ZOOM_WEB_CLIENT_PATH.match(path)
    return match.group("number") if match else None


def _platform(parts: SplitResult) -> str | None:
    host = _host(parts)
    path = parts.path
    if any(_is_under(host, domain) for domain in _ZOOM_HOSTS):
        if _zoom_number(path) or _ZOOM_PERSONAL_PATH.match(path):
            return "zoom"
        return None
    if host in _TEAMS_HOSTS:
        if _TEAMS_MEETUP_PATH.match(path) or _TEAMS_MEET_PATH.match(path):
            return "teams"
        return None
    if host == _MEET_HOST:
        return "meet" if _MEET_CODE_PATH.match(path) else None
    if _is_under(host, "webex.com") and host not in ("webex.com", "www.webex.com", "help.webex.com"):
        if _WEBEX_ROOM_PATH.match(path) or _WEBEX_JOINSERVICE_PATH.match(path):
            return "webex"
        if _WEBEX_JPHP_PATH.match(path) and any(k.lower() == "mtid" for k, _ in parse_qsl(parts.query)):
            return "webex"
    return None


def _unwrap_once(url: str) -> str | None:
    parts = _split(url)
    if parts is None:
        return None
    host = _host(parts)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if host.endswith(("safelinks.protection.outlook.com", "safelinks.protection.office365.us")):
        return query.get("url") or None
    if host in ("www.google.com", "google.com") and parts.path == "/url":
        return query.get("q") or query.get("url") or None
    if host == "urldefense.proofpoint.com" and parts.path.startswith("/v2/url"):
        encoded = query.get("u")
        # v2 encodes "%" as "-" and "/" as "_" before percent-encoding the rest.
        return unquote(encoded.replace("_", "/").replace("-", "%")) if encoded else None
    if host == "urldefense.com" and parts.path.startswith("/v3/__"):
        inner = url.split("/v3/__", 1)[1].split("__;", 1)[0]
        # v3 replaces some characters with "*" and lists them separately; those links stay wrapped.
        return inner if "*" not in inner else None
    if host in _TEAMS_HOSTS:
        if parts.path.startswith("/dl/launcher/"):
            target = query.get("url", "")
            if target.startswith("/_#/l/meetup-join/"):
                return f"https://{host}{target[3:]}"
        if parts.path in ("/_", "/") and parts.fragment.startswith("/l/meetup-join/"):
            return f"https://{host}{parts.fragment}"
    return None


def _is_passcode(platform: str | None, name: str) -> bool:
    if platform == "zoom":
        return name.lower() == "pwd"
    return platform == "teams" and name == "p"


def _passcode_digest(
    query: list[tuple[str, str]], name: str, meeting: str, *, case_sensitive_name: bool
) -> list[tuple[str, str]]:
    """The ``<name>-sha256`` parameter a dedup key holds instead of the passcode (none without one).

    The digest is salted with the meeting's number, so one passcode on two meetings gives two
    digests and no table of digests of common passcodes applies. A key given again keeps its
    digest, so normalising is idempotent.
    """

    def named(key: str, wanted: str) -> bool:
        return key == wanted if case_sensitive_name else key.lower() == wanted

    for key, value in query:
        if named(key, name) and value:
            digest = hashlib.sha256(f"meetpilot passcode\0{meeting}\0{value}".encode()).hexdigest()
            return [(name + _DIGEST_SUFFIX, digest[:16])]
    for key, value in query:
        if named(key, name + _DIGEST_SUFFIX) and _DIGEST_VALUE.match(value):
            return [(name + _DIGEST_SUFFIX, value)]
    return []


def _trim(url: str) -> str:
    """Drop punctuation that ends the sentence around a link, and unbalanced closing brackets."""
    text = url
    while text:
        last = text[-1]
        if last in _TRAILING or (last in _PAIRS and text.count(last) > text.count(_PAIRS[last])):
            text = text[:-1]
        else:
            break
    return text


def _is_tracking(key: str) -> bool:
    lowered = key.lower()
    return lowered in _TRACKING_EXACT or lowered.startswith(_TRACKING_PREFIXES)


def _joinable(candidate: str) -> str | None:
    url = unwrap_redirects(_trim(candidate.strip()))
    parts = _split(url)
    if parts is None or _platform(parts) is None:
        return None
    # Keep what the platform needs to admit the bot, but make the link a valid URL: raw quotes and
    # braces from an unencoded Teams context, spaces, non-ASCII characters.
    return quote(url, safe=":/?#@!$&'()*+,;=%~-._[]")


def _video_entry_points(conference_data: Mapping[str, object] | None) -> Iterator[str]:
    if not isinstance(conference_data, Mapping):
        return
    entry_points = conference_data.get("entryPoints")
    if not isinstance(entry_points, Iterable) or isinstance(entry_points, (str, bytes)):
        return
    for entry in entry_points:
        if isinstance(entry, Mapping) and entry.get("entryPointType") == "video":
            uri = entry.get("uri")
            if isinstance(uri, str) and uri:
                yield uri


def _links_in(text: str) -> Iterator[str]:
    """Candidate links in a location or description, in the order a reader meets them."""
    if _LOOKS_LIKE_HTML.search(text):
        reader = _HtmlLinks()
        try:
            reader.feed(text)
            reader.close()
        except (AssertionError, ValueError):  # the stdlib parser gives up on some broken markup
            reader.pieces.append(("text", unescape(text)))
        run: list[str] = []  # text between inline tags (<span>, <wbr>) belongs together
        for kind, value in [*reader.pieces, ("href", "")]:
            if kind == "text":
                run.append(value)
                continue
            yield from _links_in_plain("".join(run))
            run.clear()
            if value:
                yield value
        # Last resort for markup the reader mangled, e.g. "<https://...>" inside an HTML body.
        yield from _links_in_plain(unescape(text))
    else:
        yield from _links_in_plain(unescape(text))


def _links_in_plain(text: str) -> Iterator[str]:
    for match in _LINK_IN_TEXT.finditer(text):
        if match.group("schemed"):
            yield match.group("schemed")
        else:
            yield "https://" + match.group("bare")


class _HtmlLinks(HTMLParser):
    """Collects link targets and visible text of an HTML description, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[tuple[str, str]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "a":
            for name, value in attrs:
                if name == "href" and value:
                    self.pieces.append(("href", value.strip()))
        elif tag in ("br", "p", "div", "li", "tr"):
            self.pieces.append(("text", "\n"))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.pieces.append(("text", data))
