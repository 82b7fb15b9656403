"""The official `openai` Python SDK, unchanged, against Switchyard: Chat Completions
(`SDK_API=chat`) or the Responses API (`SDK_API=responses`). See `sdk_common.py` for the
environment and the summaries it prints.

(Not named `openai.py`: the script's directory comes first on `sys.path` and would shadow the
package.)
"""

import os

import openai

from sdk_common import (
    IDS,
    MAX_TOKENS,
    PROMPT,
    TIMEOUT,
    TOOL_DESCRIPTION,
    TOOL_NAME,
    TOOL_PROMPT,
    TOOL_SCHEMA,
    CheckFailed,
    cached,
    check,
    check_text,
    check_tokens,
    error_summary,
    expect_error,
    run,
    tool_summary,
)

API = os.environ.get("SDK_API", "chat")


@cached
def client(url, key):
    return openai.OpenAI(
        base_url=f"{url}/v1",
        api_key=key,
        max_retries=0,
        timeout=TIMEOUT,
        http_client=openai.DefaultHttpxClient(event_hooks=IDS.event_hooks()),
    )


# ---- Chat Completions ----

CHAT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": TOOL_DESCRIPTION,
            "parameters": TOOL_SCHEMA,
        },
    }
]


def chat_args(case):
    """The create arguments of a text or tool case."""
    if case.kind == "tool":
        return {
            "model": case.model,
            "messages": [{"role": "user", "content": TOOL_PROMPT}],
            "tools": CHAT_TOOLS,
            "max_tokens": MAX_TOKENS,
        }
    return {
        "model": case.model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }


def chat_call(case):
    """Makes the call in the case's stream mode. Returns the final ChatCompletion's parts as
    `(message text, tool calls as (name, arguments, id), finish_reason, usage, events)`, and the
    text the stream's deltas added up to (`None` for one response)."""
    c = client(case)
    args = chat_args(case)
    if case.stream == "0":
        completion = c.chat.completions.create(**args)
        check(completion.object == "chat.completion", f"object is {completion.object!r}")
        return final_completion(completion, None, None)
    if case.stream == "1":
        # The SDK's helper accumulates the chunks into a final ChatCompletion.
        with c.chat.completions.stream(**args, stream_options={"include_usage": True}) as stream:
            deltas, events = [], 0
            for event in stream:
                events += 1
                if event.type == "content.delta":
                    deltas.append(event.delta)
            completion = stream.get_final_completion()
        return final_completion(completion, "".join(deltas), events)
    raw = c.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    deltas, calls, usage, finish, events = [], {}, None, None, 0
    for chunk in raw:
        events += 1
        check(chunk.object == "chat.completion.chunk", f"chunk object is {chunk.object!r}")
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            for call in choice.delta.tool_calls or []:
                name, arguments, call_id = calls.get(call.index, ("", "", None))
                if call.function is not None:
                    name += call.function.name or ""
                    arguments += call.function.arguments or ""
                calls[call.index] = (name, arguments, call_id or call.id)
            if choice.finish_reason:
                finish = choice.finish_reason
    check(usage is not None, "no chunk carried usage although include_usage was asked")
    text = "".join(deltas)
    return (text, [calls[i] for i in sorted(calls)], finish, usage, events), text


def final_completion(completion, streamed_text, events):
    check(len(completion.choices) == 1, f"{len(completion.choices)} choices")
    choice = completion.choices[0]
    check(completion.usage is not None, "the completion has no usage")
    calls = [
        (call.function.name, call.function.arguments, call.id)
        for call in choice.message.tool_calls or []
    ]
    parts = (choice.message.content or "", calls, choice.finish_reason, completion.usage, events)
    return parts, streamed_text


def chat_case(case):
    (text, calls, finish, usage, events), streamed = chat_call(case)
    if streamed is not None:
        check(streamed == text, f"deltas {streamed!r} != final {text!r}")
    check_tokens(usage.prompt_tokens, "usage.prompt_tokens")
    check_tokens(usage.completion_tokens, "usage.completion_tokens")
    if case.kind == "tool":
        check(len(calls) == 1, f"{len(calls)} tool calls: {calls}")
        check(finish == "tool_calls", f"finish_reason is {finish!r}")
        name, arguments, call_id = calls[0]
        summary = tool_summary(
            name, arguments, call_id, finish, usage.prompt_tokens, usage.completion_tokens, text
        )
        summary["events"] = events
        return summary
    check_text(text, "the message content")
    check(not calls, f"unexpected tool calls: {calls}")
    check(finish == "stop", f"finish_reason is {finish!r}")
    return {
        "text": text,
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "finish_reason": finish,
        "events": events,
    }


# ---- Responses ----

RESPONSES_TOOLS = [
    {
        "type": "function",
        "name": TOOL_NAME,
        "description": TOOL_DESCRIPTION,
        "parameters": TOOL_SCHEMA,
        "strict": False,
    }
]


def responses_args(case):
    if case.kind == "tool":
        return {
            "model": case.model,
            "input": TOOL_PROMPT,
            "tools": RESPONSES_TOOLS,
            "max_output_tokens": MAX_TOKENS,
        }
    return {"model": case.model, "input": PROMPT, "max_output_tokens": MAX_TOKENS}


def responses_call(case):
    """Makes the call in the case's stream mode. Returns the final Response, the text and the
    function-call arguments its deltas added up to (`None` for one response), and the number
    of events."""
    c = client(case)
    args = responses_args(case)
    if case.stream == "0":
        return c.responses.create(**args), None, None, None
    deltas, arguments, events, types = [], [], 0, []

    def see(event):
        types.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.function_call_arguments.delta":
            arguments.append(event.delta)
        elif event.type in ("error", "response.failed"):
            raise CheckFailed(f"the stream carried {event.type}: {event}")

    if case.stream == "1":
        # The SDK's helper accumulates the events into the final Response.
        with c.responses.stream(**args) as stream:
            for event in stream:
                events += 1
                see(event)
            response = stream.get_final_response()
    else:
        response = None
        for event in c.responses.create(**args, stream=True):
            events += 1
            see(event)
            if event.type == "response.completed":
                response = event.response
        check(response is not None, f"no response.completed event; events: {types}")
    check(types[:1] == ["response.created"], f"events: {types}")
    return response, "".join(deltas), "".join(arguments), events


def responses_case(case):
    response, streamed_text, streamed_arguments, events = responses_call(case)
    check(response.object == "response", f"object is {response.object!r}")
    check(response.status == "completed", f"status is {response.status!r}")
    check(response.usage is not None, "the response has no usage")
    usage = response.usage
    check_tokens(usage.input_tokens, "usage.input_tokens")
    check_tokens(usage.output_tokens, "usage.output_tokens")
    text = response.output_text
    if streamed_text is not None:
        check(streamed_text == text, f"deltas {streamed_text!r} != final {text!r}")
    calls = [item for item in response.output if item.type == "function_call"]
    if case.kind == "tool":
        check(len(calls) == 1, f"{len(calls)} function calls in {response.output}")
        call = calls[0]
        if streamed_arguments is not None:
            check(
                streamed_arguments == call.arguments,
                f"argument deltas {streamed_arguments!r} != final {call.arguments!r}",
            )
        summary = tool_summary(
            call.name,
            call.arguments,
            call.call_id,
            response.status,
            usage.input_tokens,
            usage.output_tokens,
            text,
        )
        summary["events"] = events
        return summary
    check_text(text, "output_text")
    check(not calls, f"unexpected function calls: {calls}")
    return {
        "text": text,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "finish_reason": response.status,
        "events": events,
    }


# ---- Errors and the model list ----


def call(case, key=None):
    """One request of the case's API and stream mode, consumed to its end (an error status is
    raised when the SDK reads the response head)."""
    c = client(case, key)
    if API == "chat":
        args = chat_args(case)
        if case.stream == "1":
            with c.chat.completions.stream(**args) as stream:
                return stream.get_final_completion()
        if case.stream == "raw":
            return list(c.chat.completions.create(**args, stream=True))
        return c.chat.completions.create(**args)
    args = responses_args(case)
    if case.stream == "1":
        with c.responses.stream(**args) as stream:
            return stream.get_final_response()
    if case.stream == "raw":
        return list(c.responses.create(**args, stream=True))
    return c.responses.create(**args)


def errors(case):
    if case.kind == "not_found":
        exc = expect_error(lambda: call(case), openai.NotFoundError, 404)
    else:
        exc = expect_error(
            lambda: call(case, key="sk-not-a-switchyard-key"),
            openai.AuthenticationError,
            401,
        )
    # The SDK parsed `{"error": {"message", "type", "param", "code"}}`.
    check(isinstance(exc.body, dict), f"the error body is not an OpenAI envelope: {exc.body!r}")
    return error_summary(exc, exc.code)


def models(case):
    """`GET /v1/models` and `GET /v1/models/{model}`."""
    c = client(case)
    listed = list(c.models.list())
    one = c.models.retrieve(case.model)
    for model in listed + [one]:
        check(model.object == "model", f"not an OpenAI model entry: {model!r}")
    check(one.id == case.model, f"retrieved {one.id!r} for {case.model!r}")
    return {"models": sorted(model.id for model in listed), "retrieved": one.id}


if __name__ == "__main__":
    if API == "chat":
        handlers = {"ok": chat_case, "tool": chat_case, "models": models}
    elif API == "responses":
        handlers = {"ok": responses_case, "tool": responses_case}
    else:
        raise SystemExit(f"SDK_API must be chat or responses, not {API!r}")
    handlers.update({"not_found": errors, "unauthorized": errors})
    run(f"openai-{API}", handlers)
