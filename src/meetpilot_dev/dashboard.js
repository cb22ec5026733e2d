"use strict";
// The dev dashboard's behaviour, served as a file: the page's CSP allows no inline script.
const $ = (id) => document.getElementById(id);
let rows = [];
let selected = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child === null || child === undefined ? "" : child);
  return node;
}

function badgeClass(row) {
  if (row.needs_review) return "flag";
  if (row.outcome === "transcript_stored") return "ok";
  if (row.outcome) return "quiet";
  return "open";
}

function meetingLabel(row) {
  // The key's link, without the digest that stands for a passcode in it.
  return (row.meeting_key || "").split("|")[0].replace(/[?&][\w]+-sha256=[0-9a-f]+$/, "");
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || ("HTTP " + response.status));
  return body;
}

async function loadSessions() {
  const params = new URLSearchParams({ limit: "200" });
  if ($("f-status").value) params.set("status", $("f-status").value);
  if ($("f-user").value.trim()) params.set("user_id", $("f-user").value.trim());
  try {
    const page = await getJSON("/api/sessions?" + params);
    rows = page.items || [];
    $("list-message").textContent = page.next_cursor ? "showing the first 200 sessions" : "";
    $("list-message").className = "empty";
  } catch (err) {
    rows = [];
    $("list-message").textContent = "could not list sessions: " + err.message;
    $("list-message").className = "error";
  }
  render();
  loadPunctuality();
  $("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
}

function visibleRows() {
  const needle = $("f-search").value.trim().toLowerCase();
  return rows.filter((row) =>
    (!$("f-review").checked || row.needs_review) &&
    (!needle || (row.meeting_key || "").toLowerCase().includes(needle) ||
      (row.title || "").toLowerCase().includes(needle)));
}

function render() {
  const body = document.querySelector("#sessions tbody");
  const shown = visibleRows();
  body.replaceChildren(...shown.map((row) => {
    const tr = el("tr", { "data-session": row.session_id, "data-status": row.status,
                          "data-outcome": row.outcome || "" },
      el("td", { class: "meeting", title: row.meeting_key }, meetingLabel(row)),
      el("td", {}, (row.meeting_start || "").replace("T", " ").slice(0, 16)),
      el("td", {}, row.status),
      el("td", {}, el("span", { class: "badge " + badgeClass(row) }, row.outcome || "in progress")),
      el("td", {}, (row.bot_id || "").slice(0, 8)));
    if (row.session_id === selected) tr.classList.add("selected");
    tr.addEventListener("click", () => select(row.session_id));
    return tr;
  }));
  const flagged = rows.filter((r) => r.needs_review).length;
  const stored = rows.filter((r) => r.outcome === "transcript_stored").length;
  $("summary").textContent = rows.length + " sessions · " + stored + " transcripts · " + flagged + " need review" +
    (shown.length !== rows.length ? " · " + shown.length + " shown" : "");
  if (!shown.length && !$("list-message").textContent) $("list-message").textContent = "no sessions match";
}

function seconds(value) {
  return value === null || value === undefined ? "–" : value.toFixed(1);
}

async function loadPunctuality() {
  try {
    const body = await getJSON("/api/punctuality");
    const platforms = body.platforms || [];
    document.querySelector("#punctuality-table tbody").replaceChildren(...platforms.map((p) =>
      el("tr", { "data-platform": p.platform },
        el("td", {}, p.platform),
        el("td", {}, String(p.lateness_count)),
        el("td", { "data-figure": "lateness-p50" }, seconds(p.lateness_p50)),
        el("td", { "data-figure": "lateness-p95" }, seconds(p.lateness_p95)),
        el("td", {}, String(p.admission_wait_count)),
        el("td", { "data-figure": "wait-p50" }, seconds(p.admission_wait_p50)),
        el("td", { "data-figure": "wait-p95" }, seconds(p.admission_wait_p95)))));
    $("punctuality-message").textContent = platforms.length ? "" : "no bot has reached a meeting yet";
    $("punctuality-message").className = "empty";
  } catch (err) {
    $("punctuality-message").textContent = "could not compute punctuality: " + err.message;
    $("punctuality-message").className = "error";
  }
}

async function select(sessionId) {
  selected = sessionId;
  render();
  const detail = $("detail");
  try {
    const s = await getJSON("/api/sessions/" + encodeURIComponent(sessionId));
    const timeline = el("ol", { class: "timeline" }, ...(s.history || []).map((h) =>
      el("li", {}, el("span", { class: "at" }, (h.received_at || h.timestamp || "").slice(11, 19)),
         h.name + (h.status ? " → " + h.status : ""),
         h.source ? el("span", { class: "src" }, "via " + h.source) : null)));
    const viewer = el("pre", { id: "viewer" }, "");
    const buttons = el("div", {}, ...["txt", "vtt", "json"].map((fmt) => {
      const b = el("button", { type: "button", "data-format": fmt }, fmt);
      b.addEventListener("click", () => showTranscript(s.bot_id || s.session_id, fmt, viewer));
      return b;
    }));
    const stored = s.transcript_state === "stored";
    detail.replaceChildren(
      el("h2", {}, (s.meeting && s.meeting.title) || meetingLabel(s)),
      el("div", {}, "status ", el("b", {}, s.status), s.outcome ? " · outcome " : "", s.outcome ? el("b", {}, s.outcome) : ""),
      s.outcome_reason ? el("div", { class: "error" }, s.outcome_reason) : "",
      el("div", { class: "at" }, "bot " + (s.bot_id || "not created yet") + " · session " + s.session_id),
      el("h2", {}, "timeline"),
      (s.history || []).length ? timeline : el("div", { class: "empty" }, "no events yet"),
      el("h2", {}, "transcript"),
      stored ? buttons : el("div", { class: "empty" }, "no transcript stored (" + s.transcript_state + ")"),
      viewer);
    if (stored) showTranscript(s.bot_id || s.session_id, "txt", viewer);
  } catch (err) {
    detail.replaceChildren(el("div", { class: "error" }, "could not load the session: " + err.message));
  }
}

async function showTranscript(ident, fmt, viewer) {
  viewer.textContent = "loading " + fmt + "…";
  const response = await fetch("/api/transcripts/" + encodeURIComponent(ident) + "?format=" + fmt);
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try { message = JSON.parse(text).message; } catch (e) { /* plain text */ }
    viewer.textContent = "could not load the transcript: " + message;
    return;
  }
  viewer.dataset.format = fmt;
  viewer.textContent = text;
}

// --- calendars: each one's status, and the decision taken for every event in its window ---------

let calendars = [];
let selectedCalendar = null;

function statusClass(status) {
  if (status === "connected") return "ok";
  if (status === "disconnected") return "flag";
  return "quiet";
}

async function loadCalendars() {
  try {
    const page = await getJSON("/api/calendars");
    calendars = page.items || [];
    $("calendars-message").textContent = calendars.length ? "" : "no calendars connected";
    $("calendars-message").className = "empty";
  } catch (err) {
    calendars = [];
    $("calendars-message").textContent = "could not list calendars: " + err.message;
    $("calendars-message").className = "error";
  }
  const body = document.querySelector("#calendars tbody");
  body.replaceChildren(...calendars.map((cal) => {
    const tr = el("tr", { "data-calendar": cal.calendar_id, "data-status": cal.status },
      el("td", { title: cal.calendar_id }, cal.label || cal.calendar_id),
      el("td", {}, cal.provider || cal.kind),
      el("td", {}, cal.user_id),
      el("td", {}, el("span", { class: "badge " + statusClass(cal.status) }, cal.status)),
      el("td", {}, (cal.last_synced_at || "never").replace("T", " ").slice(0, 19)));
    if (cal.calendar_id === selectedCalendar) tr.classList.add("selected");
    tr.addEventListener("click", () => selectCalendar(cal.calendar_id));
    return tr;
  }));
  $("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
}

async function selectCalendar(calendarId) {
  selectedCalendar = calendarId;
  for (const tr of document.querySelectorAll("#calendars tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.calendar === calendarId);
  }
  const detail = $("calendar-detail");
  const cal = calendars.find((c) => c.calendar_id === calendarId) || { calendar_id: calendarId };
  try {
    const page = await getJSON("/api/calendars/" + encodeURIComponent(calendarId) + "/events");
    const rows = (page.items || []).map((d) => el("tr", { "data-event": d.event_id, "data-recorded": String(d.recorded) },
      el("td", {}, (d.start || "all day").replace("T", " ").slice(0, 16)),
      el("td", { class: "meeting", title: d.title }, d.title || "(no title)"),
      el("td", {}, el("span", { class: "badge " + (d.recorded ? "ok" : "skip") }, d.recorded ? "recorded" : "no bot")),
      el("td", { class: "reason" }, d.reason),
      el("td", { class: "meeting", title: d.meeting_key || "" }, d.bot_id ? "bot " + d.bot_id.slice(0, 8) : "")));
    const problems = [...new Set([cal.disconnected_reason, cal.last_error].filter(Boolean))];
    detail.replaceChildren(
      el("h2", {}, (cal.label || calendarId) + " · " + (cal.provider || cal.kind || "") + " · " + (cal.user_id || "")),
      el("div", {}, "status ", el("b", {}, page.status || cal.status || "")),
      ...problems.map((text) => el("div", { class: "error" }, text)),
      rows.length
        ? el("table", { id: "decisions" },
            el("thead", {}, el("tr", {}, el("th", {}, "start (UTC)"), el("th", {}, "event"), el("th", {}, "decision"),
              el("th", {}, "why"), el("th", {}, "bot"))),
            el("tbody", {}, ...rows))
        : el("div", { class: "empty" }, "no events in the sync window yet"),
      page.next_cursor ? el("div", { class: "empty" }, "showing the first page of events") : "");
  } catch (err) {
    detail.replaceChildren(el("div", { class: "error" }, "could not load the calendar's events: " + err.message));
  }
}

function showView(viewId) {
  for (const tab of document.querySelectorAll("header .tab")) {
    const active = tab.dataset.view === viewId;
    tab.classList.toggle("active", active);
    $(tab.dataset.view).hidden = !active;
  }
  if (viewId === "calendars-view") loadCalendars();
}

for (const tab of document.querySelectorAll("header .tab")) {
  tab.addEventListener("click", () => showView(tab.dataset.view));
}

$("filters").addEventListener("submit", (event) => event.preventDefault());
for (const id of ["f-status", "f-user"]) $(id).addEventListener("change", loadSessions);
for (const id of ["f-search", "f-review"]) $(id).addEventListener("input", render);
$("refresh").addEventListener("click", loadSessions);
setInterval(() => {
  if (!$("f-auto").checked) return;
  if ($("calendars-view").hidden) loadSessions(); else loadCalendars();
}, 3000);
loadSessions();
