"""The official `google-genai` Python SDK, unchanged, against Switchyard's Gemini API
(`POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
`GET /v1beta/models`), pointed at the gateway with `http_options.base_url`. See `sdk_common.py`
for the environment and the summaries it prints. (`stream=raw` is the same as `1`: the SDK has
one way to stream.)
"""

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from sdk_common import (
    IDS,
    MAX_TOKENS,
    PROMPT,
    TIMEOUT,
    TOOL_DESCRIPTION,
    TOOL_NAME,
    TOOL_PROMPT,
    TOOL_SCHEMA,
    cached,
    check,
    check_text,
    check_tokens,
    error_summary,
    expect_error,
    run,
    tool_summary,
)


@cached
def client(url, key):
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=url,
            # Milliseconds.
            timeout=int(TIMEOUT * 1000),
            client_args={"event_hooks": IDS.event_hooks()},
        ),
    )


TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name=TOOL_NAME, description=TOOL_DESCRIPTION, parameters_json_schema=TOOL_SCHEMA
        )
    ]
)


def request(case):
    """`(contents, config)` of a text or tool case."""
    if case.kind == "tool":
        return TOOL_PROMPT, types.GenerateContentConfig(max_output_tokens=MAX_TOKENS, tools=[TOOL])
    return PROMPT, types.GenerateContentConfig(max_output_tokens=MAX_TOKENS)


def text_of(response):
    """The text parts of a response (`response.text` warns when there are function calls)."""
    if not response.candidates or not response.candidates[0].content:
        return ""
    return "".join(part.text or "" for part in response.candidates[0].content.parts or [])


def generate(case):
    c = client(case)
    contents, config = request(case)
    events = None
    if case.stream == "0":
        response = c.models.generate_content(model=case.model, contents=contents, config=config)
        text = text_of(response)
        calls = list(response.function_calls or [])
        usage = response.usage_metadata
        finish = response.candidates[0].finish_reason if response.candidates else None
    else:
        # The SDK yields one GenerateContentResponse per chunk; the text is their
        # concatenation, the usage the last chunk's.
        deltas, calls, usage, finish, events = [], [], None, None, 0
        for chunk in c.models.generate_content_stream(
            model=case.model, contents=contents, config=config
        ):
            events += 1
            deltas.append(text_of(chunk))
            calls.extend(chunk.function_calls or [])
            if chunk.usage_metadata is not None:
                usage = chunk.usage_metadata
            if chunk.candidates and chunk.candidates[0].finish_reason:
                finish = chunk.candidates[0].finish_reason
        text = "".join(deltas)
    check(usage is not None, "no usage_metadata")
    check_tokens(usage.prompt_token_count, "usage_metadata.prompt_token_count")
    check_tokens(usage.candidates_token_count, "usage_metadata.candidates_token_count")
    check(finish == types.FinishReason.STOP, f"finish_reason is {finish!r}")
    finish_name = finish.value if hasattr(finish, "value") else str(finish)
    if case.kind == "tool":
        check(len(calls) == 1, f"{len(calls)} function calls: {calls}")
        summary = tool_summary(
            calls[0].name,
            calls[0].args,
            None,
            finish_name,
            usage.prompt_token_count,
            usage.candidates_token_count,
            text,
        )
        summary["events"] = events
        return summary
    check_text(text, "the response text")
    check(not calls, f"unexpected function calls: {calls}")
    return {
        "text": text,
        "input_tokens": usage.prompt_token_count,
        "output_tokens": usage.candidates_token_count,
        "finish_reason": finish_name,
        "events": events,
    }


def call(case, key=None):
    """One request in the case's stream mode, consumed to its end."""
    c = client(case, key)
    contents, config = request(case)
    if case.streamed:
        stream = c.models.generate_content_stream(model=case.model, contents=contents, config=config)
        return list(stream)
    return c.models.generate_content(model=case.model, contents=contents, config=config)


def errors(case):
    if case.kind == "not_found":
        status, name = 404, "NOT_FOUND"
        exc = expect_error(lambda: call(case), genai_errors.ClientError, status)
    else:
        status, name = 401, "UNAUTHENTICATED"
        exc = expect_error(
            lambda: call(case, key="not-a-switchyard-key"), genai_errors.ClientError, status
        )
    # The SDK parsed `{"error": {"code", "message", "status"}}`.
    check(exc.code == status, f"error code is {exc.code!r}")
    check(exc.status == name, f"error status is {exc.status!r}, expected {name}")
    check_text(exc.message, "error message")
    return error_summary(exc, exc.status)


def models(case):
    """`GET /v1beta/models` (paged by the SDK) and `GET /v1beta/models/{model}`."""
    c = client(case)
    listed = sorted(model.name.removeprefix("models/") for model in c.models.list())
    one = c.models.get(model=case.model)
    check(one.name == f"models/{case.model}", f"got {one.name!r} for {case.model!r}")
    return {"models": listed, "retrieved": one.name.removeprefix("models/")}


if __name__ == "__main__":
    run(
        "google-genai",
        {
            "ok": generate,
            "tool": generate,
            "not_found": errors,
            "unauthorized": errors,
            "models": models,
        },
    )
