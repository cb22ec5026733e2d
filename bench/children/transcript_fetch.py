"""One large transcript through the ``transcript_fetch`` handler, in a process of its own.

    python transcript_fetch.py config.json

config: {"session_id": ..., "out": path}. The environment points the container at the emulator
and at a loopback server that plays MeetStream's get_transcript. Clients are created and the
secrets read before the timed call, so the figure is the fetch alone; the peak RSS
(``resource.getrusage``) is the whole process's.
"""

import json
import resource
import sys
import time


def reset_peak() -> bool:
    """Start the peak-RSS count afresh: Linux carries ru_maxrss over from the parent across exec."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def high_water_kb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


PEAK_RESET = reset_peak()


class Context:
    function_name = "TranscriptFetchFunction"
    memory_limit_in_mb = 1024
    function_version = "$LATEST"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:TranscriptFetchFunction"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def top_functions(profiler, count):  # type: ignore[no-untyped-def]
    """The functions with the most time of their own, as [name, own seconds, calls]."""
    import pstats

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, calls, own, _cumulative, _) in stats.items():
        where = filename.split("site-packages/")[-1].split("/src/")[-1]
        if "/lib/python" in where:  # the standard library: keep the module path only
            where = where.split("/lib/python", 1)[1].split("/", 1)[-1]
        rows.append([f"{where}:{line}({name})", own, calls])
    rows.sort(key=lambda row: -row[1])
    return rows[:count]


def union_seconds(spans):  # type: ignore[no-untyped-def]
    """How long at least one of the (began, ended) spans was running."""
    total, reach = 0.0, None
    for began, ended in sorted(spans):
        if reach is None or began > reach:
            total += ended - began
            reach = ended
        elif ended > reach:
            total += ended - reach
            reach = ended
    return total


def retried(c, session_id, record, calls, counting):  # type: ignore[no-untyped-def]
    """The same job delivered again after its objects were stored but its session write was lost:
    the session is put back to "job queued", the objects stay. Returns its AWS calls and time."""
    from datetime import UTC, datetime

    from meetpilot.domain.session import TranscriptState
    from meetpilot.handlers import transcript_fetch

    repo = c.repository
    session = repo.get_session(session_id)
    session.transcript_state, session.outcome, session.outcome_reason = TranscriptState.QUEUED, None, None
    session.transcript = {}
    repo.save_session(session, datetime.now(UTC))
    calls.clear()
    counting[0] = True
    began = time.perf_counter()
    response = transcript_fetch.handler({"Records": [record]}, Context())
    seconds = time.perf_counter() - began
    counting[0] = False
    stored = repo.get_session(session_id)
    return {
        "response": response,
        "seconds": seconds,
        "aws_calls": dict(sorted(calls.items())),
        "state": stored.transcript_state.value if stored else None,
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        config = json.load(f)
    from meetpilot.composition import container
    from meetpilot.handlers import transcript_fetch

    c = container()
    c.repository.get_session(config["session_id"])
    c.secrets.api_key()
    store, provider = c.transcript_store, c.provider
    spent = {"download_s": 0.0, "upload_s": 0.0, "uploaded_bytes": 0, "raw_bytes": 0}
    uploads = []  # (began, ended) of each upload; they overlap, so their union is what they took
    calls = {}  # AWS operations sent during the timed call, e.g. {"s3.PutObject": 4}
    counting = [False]

    def count_call(model, **_):  # type: ignore[no-untyped-def]
        if counting[0]:
            name = f"{model.service_model.service_name}.{model.name}"
            calls[name] = calls.get(name, 0) + 1

    for service in ("s3", "dynamodb"):
        c.client(service).meta.events.register("before-call", count_call)

    download, put_file = provider.download_transcript, store.put_file
    # The container builds adapters on first use behind a stand-in: time the adapter itself.
    provider, store = getattr(provider, "_built", provider), getattr(store, "_built", store)

    def timed_download(transcript_id, sink):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        written = download(transcript_id, sink)
        spent["download_s"] += time.perf_counter() - began
        spent["raw_bytes"] += written
        return written

    def timed_put(key, path, **kwargs):  # type: ignore[no-untyped-def]
        import os

        began = time.perf_counter()
        put_file(key, path, **kwargs)
        uploads.append((began, time.perf_counter()))
        spent["uploaded_bytes"] += os.path.getsize(path)

    provider.download_transcript = timed_download
    store.put_file = timed_put
    record = {"messageId": "m-1", "receiptHandle": "r-1", "body": json.dumps({"session_id": config["session_id"]}),
              "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:transcripts", "awsRegion": "us-east-1"}  # fmt: skip
    rss_before_kb = high_water_kb() if PEAK_RESET else None
    profiler = None
    if config.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    counting[0] = True
    cpu = time.process_time()
    began = time.perf_counter()
    response = transcript_fetch.handler({"Records": [record]}, Context())
    seconds = time.perf_counter() - began
    cpu_seconds = time.process_time() - cpu
    counting[0] = False
    if profiler is not None:
        profiler.disable()
    spent["upload_s"] = union_seconds(uploads)
    result = {
        "response": response,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # every thread of the process: what the work costs on a busy host
        "aws_calls": dict(sorted(calls.items())),
        # The process's own peak (VmHWM, reset at start); getrusage's figure may be the parent's.
        "peak_rss_kb": high_water_kb() if PEAK_RESET else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "getrusage_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "peak_source": "VmHWM" if PEAK_RESET else "getrusage",
        "peak_rss_before_fetch_kb": rss_before_kb,
        **spent,
    }
    if config.get("retry"):
        result["retry"] = retried(c, config["session_id"], record, calls, counting)
    if profiler is not None:
        result["profile"] = top_functions(profiler, config.get("top", 12))
    with open(config["out"], "w") as f:
        json.dump(result, f)


main()
