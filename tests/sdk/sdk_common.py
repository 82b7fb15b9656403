"""What the SDK scripts share: the cases they are told to run, the request ids they saw, and how
they report.

`tests/tests/sdk.rs` runs every script with these environment variables:

- `SWITCHYARD_URL`: the gateway's base URL (`http://127.0.0.1:PORT`, no path);
- `SWITCHYARD_KEY`: the gateway key the SDK authenticates with;
- `SDK_CASES`: a JSON list of cases, each `{"model", "stream", "case"}`:
  - `stream`: `0` (one response), `1` (the SDK's streaming helper, which accumulates the final
    message) or `raw` (`stream=True` on the plain create call, events read one by one);
  - `case`: `ok` (a text answer), `tool` (a function the model calls: `get_weather`, which the
    mock upstream calls when the prompt mentions the weather), `not_found` (the model does not
    exist: the SDK must raise its 404 error), `unauthorized` (the key is wrong: the SDK must
    raise its 401 error), `models` (the SDK's model list and lookup of `model`) or
    `count_tokens` (Anthropic's token counter).

  Without `SDK_CASES`, one case from `SDK_MODEL`, `SDK_STREAM` (default `0`) and `SDK_CASE`
  (default `ok`), for running a script by hand.

Several cases share one process because importing the SDKs costs more than the calls; the cases
of one process share a client per key (building one costs tens of milliseconds). For every case the script prints one JSON summary line on stdout, in
order; it exits 0 only when every check of every case passed. A failed case's summary has
`"ok": false` and an `error`: what failed, the SDK's exception class, the HTTP status and body
the gateway answered with, and the traceback's last lines (also printed on stderr).
"""

import json
import os
import sys
import traceback

PROMPT = "Say hello."
MAX_TOKENS = 64
# The function offered in `tool` cases, and a prompt that makes the mock upstream call it.
TOOL_PROMPT = "What is the weather like in Paris today?"
TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "The current weather at a place."
TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location"],
}
KINDS = ("ok", "tool", "not_found", "unauthorized", "models", "count_tokens")
# Seconds before the SDK gives up on the gateway: far above what the mock needs.
TIMEOUT = 30.0


class Case:
    """One case (see the module docstring)."""

    def __init__(self, url, key, spec):
        self.url = url.rstrip("/")
        self.key = key
        self.model = spec["model"]
        self.stream = spec.get("stream", "0")
        self.kind = spec.get("case", "ok")
        if self.stream not in ("0", "1", "raw"):
            raise CheckFailed(f"stream must be 0, 1 or raw, not {self.stream!r}")
        if self.kind not in KINDS:
            raise CheckFailed(f"case must be one of {KINDS}, not {self.kind!r}")

    @property
    def streamed(self):
        return self.stream != "0"


def case_specs():
    """The cases asked for, from `SDK_CASES` or the single-case variables."""
    listed = os.environ.get("SDK_CASES")
    if listed:
        return json.loads(listed)
    return [
        {
            "model": os.environ["SDK_MODEL"],
            "stream": os.environ.get("SDK_STREAM", "0"),
            "case": os.environ.get("SDK_CASE", "ok"),
        }
    ]


class CheckFailed(Exception):
    """A check of the SDK's result failed."""


class RequestIds:
    """An httpx response hook: collects the status and `x-request-id` of every response of the
    current case, so the test can look the request up in the gateway's records."""

    def __init__(self):
        self.ids = []
        self.statuses = []

    def reset(self):
        self.ids.clear()
        self.statuses.clear()

    def hook(self, response):
        self.statuses.append(response.status_code)
        rid = response.headers.get("x-request-id")
        if rid:
            self.ids.append(rid)

    def event_hooks(self):
        return {"response": [self.hook]}

    def last(self):
        return self.ids[-1] if self.ids else None


# The one collector: cases run one after the other, and `run_one` resets it before each.
IDS = RequestIds()


def cached(build):
    """Wraps `build(url, key)`, which makes an SDK client, into `client(case, key=None)` that
    makes one client per key and reuses it (the case's key unless another is given)."""
    clients = {}

    def client(case, key=None):
        key = key or case.key
        if (case.url, key) not in clients:
            clients[(case.url, key)] = build(case.url, key)
        return clients[(case.url, key)]

    return client


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def check_text(text, what):
    check(isinstance(text, str) and text.strip() != "", f"{what} is empty: {text!r}")


def check_tokens(value, what):
    check(isinstance(value, int) and value > 0, f"{what} is not a positive count: {value!r}")


def emit(summary):
    sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
    sys.stdout.flush()


def describe(exc):
    """What an exception says, with the HTTP status and body when it carries a response."""
    out = {"class": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc)[:2000]}
    for attr in ("status_code", "code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, (int, str)):
            out[attr] = value
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            out["http_status"] = response.status_code
            out["body"] = response.text[:2000]
        except Exception:  # a streamed body already consumed or closed
            pass
    return out


def run_one(sdk, url, key, spec, handlers):
    """Runs one case with `handlers[case.kind](case)`, which makes the call, checks the SDK's
    result (raising on any failure) and returns the summary's fields. Prints the summary;
    returns whether the case passed. Any exception is a failure, described."""
    summary = {
        "sdk": sdk,
        "ok": False,
        "model": spec.get("model"),
        "stream": spec.get("stream"),
        "case": spec.get("case"),
    }
    IDS.reset()
    try:
        case = Case(url, key, spec)
        handler = handlers.get(case.kind)
        check(handler is not None, f"{sdk} has no {case.kind!r} case")
        summary.update(handler(case))
        summary["ok"] = True
    except Exception as exc:  # every failure is reported the same way
        trace = traceback.format_exc()
        sys.stderr.write(f"case {spec}:\n{trace}\n")
        summary["error"] = describe(exc)
        summary["error"]["traceback"] = trace.strip().splitlines()[-6:]
    summary["request_id"] = IDS.last()
    summary["statuses"] = list(IDS.statuses)
    emit(summary)
    return summary["ok"]


def run(sdk, handlers):
    """Runs every case asked for, in order, and exits 0 only if all passed. `handlers` maps a
    case kind to its function (see `run_one`)."""
    url = os.environ["SWITCHYARD_URL"]
    key = os.environ["SWITCHYARD_KEY"]
    passed = [run_one(sdk, url, key, spec, handlers) for spec in case_specs()]
    sys.exit(0 if all(passed) else 1)


def expect_error(call, errors, status):
    """Calls `call()` and returns the exception it raised, which must be an instance of `errors`
    with HTTP `status`; anything else is a failure."""
    try:
        result = call()
    except errors as exc:
        got = describe(exc)
        check(
            got.get("status_code", got.get("http_status", got.get("code"))) == status,
            f"expected HTTP {status}, the SDK raised {got}",
        )
        return exc
    raise CheckFailed(f"expected the SDK to raise {errors}, it returned {result!r}"[:2000])


def error_summary(exc, code):
    """The summary of an expected error: the SDK's class, the HTTP status, the error's code or
    type as the SDK parsed it from the envelope, and its message."""
    got = describe(exc)
    check_text(got["message"], "the error message")
    return {
        "error_class": got["class"],
        "status": got.get("http_status"),
        "error_code": code,
        "message": got["message"],
    }


def tool_summary(name, arguments, call_id, finish_reason, usage_in, usage_out, text=""):
    """The summary of a `tool` case: the call as the SDK parsed it (`arguments` a JSON text or
    an object; `call_id` `None` where the API has none), after the checks every SDK shares."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            raise CheckFailed(f"the call's arguments are not JSON: {arguments!r}") from exc
    check(name == TOOL_NAME, f"called {name!r}, expected {TOOL_NAME!r}")
    check(isinstance(arguments, dict), f"arguments are not an object: {arguments!r}")
    if call_id is not None:
        check_text(call_id, "the call's id")
    check_tokens(usage_in, "input tokens")
    check_tokens(usage_out, "output tokens")
    return {
        "tool_name": name,
        "tool_arguments": arguments,
        "finish_reason": finish_reason,
        "input_tokens": usage_in,
        "output_tokens": usage_out,
        "text": text or "",
    }
