"""The official `anthropic` Python SDK, unchanged, against Switchyard's Messages API
(`POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models`). See `sdk_common.py`
for the environment and the summaries it prints.
"""

import json

import anthropic

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

MESSAGES = [{"role": "user", "content": PROMPT}]
TOOLS = [{"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": TOOL_SCHEMA}]


@cached
def client(url, key):
    return anthropic.Anthropic(
        base_url=url,
        api_key=key,
        max_retries=0,
        timeout=TIMEOUT,
        http_client=anthropic.DefaultHttpxClient(event_hooks=IDS.event_hooks()),
    )


def create_args(case):
    if case.kind == "tool":
        return {
            "model": case.model,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": TOOL_PROMPT}],
            "tools": TOOLS,
        }
    return {"model": case.model, "max_tokens": MAX_TOKENS, "messages": MESSAGES}


def raw_stream(c, args):
    """`stream=True`, the events read one by one into `(text, tool uses as (name, input, id),
    stop_reason, input_tokens, output_tokens, events)`."""
    text, tools, types = [], {}, []
    input_tokens, output_tokens, stop_reason = None, None, None
    for event in c.messages.create(**args, stream=True):
        types.append(event.type)
        if event.type == "message_start":
            input_tokens = event.message.usage.input_tokens
        elif event.type == "content_block_start" and event.content_block.type == "tool_use":
            block = event.content_block
            tools[event.index] = [block.name, "", block.id]
        elif event.type == "content_block_delta":
            if event.delta.type == "text_delta":
                text.append(event.delta.text)
            elif event.delta.type == "input_json_delta":
                tools[event.index][1] += event.delta.partial_json
        elif event.type == "message_delta":
            stop_reason = event.delta.stop_reason
            output_tokens = event.usage.output_tokens
            # Sent again at the end when the count was not known at the start.
            if getattr(event.usage, "input_tokens", None):
                input_tokens = event.usage.input_tokens
    check(types[:1] == ["message_start"], f"events: {types}")
    check(types[-1:] == ["message_stop"], f"events: {types}")
    uses = [
        (name, json.loads(partial) if partial else {}, tool_id)
        for name, partial, tool_id in (tools[i] for i in sorted(tools))
    ]
    return "".join(text), uses, stop_reason, input_tokens, output_tokens, len(types)


def messages(case):
    c = client(case)
    args = create_args(case)
    streamed_text = None
    events = None
    if case.stream == "raw":
        text, uses, stop_reason, input_tokens, output_tokens, events = raw_stream(c, args)
    else:
        if case.stream == "0":
            message = c.messages.create(**args)
        else:
            # The SDK's helper accumulates the events into the final Message.
            with c.messages.stream(**args) as stream:
                streamed_text = "".join(stream.text_stream)
                message = stream.get_final_message()
        check(message.type == "message", f"type is {message.type!r}")
        check(message.role == "assistant", f"role is {message.role!r}")
        text = "".join(block.text for block in message.content if block.type == "text")
        uses = [
            (block.name, block.input, block.id)
            for block in message.content
            if block.type == "tool_use"
        ]
        stop_reason = message.stop_reason
        input_tokens = message.usage.input_tokens
        output_tokens = message.usage.output_tokens
        if streamed_text is not None:
            check(streamed_text == text, f"text_stream {streamed_text!r} != final {text!r}")
    check_tokens(input_tokens, "usage.input_tokens")
    check_tokens(output_tokens, "usage.output_tokens")
    if case.kind == "tool":
        check(len(uses) == 1, f"{len(uses)} tool_use blocks: {uses}")
        check(stop_reason == "tool_use", f"stop_reason is {stop_reason!r}")
        name, arguments, tool_id = uses[0]
        summary = tool_summary(
            name, arguments, tool_id, stop_reason, input_tokens, output_tokens, text
        )
        summary["events"] = events
        return summary
    check_text(text, "the message's text")
    check(not uses, f"unexpected tool_use blocks: {uses}")
    check(stop_reason == "end_turn", f"stop_reason is {stop_reason!r}")
    return {
        "text": text,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "finish_reason": stop_reason,
        "events": events,
    }


def call(case, key=None):
    """One request in the case's stream mode, consumed to its end."""
    c = client(case, key)
    args = create_args(case)
    if case.stream == "1":
        with c.messages.stream(**args) as stream:
            return stream.get_final_message()
    if case.stream == "raw":
        return list(c.messages.create(**args, stream=True))
    return c.messages.create(**args)


def errors(case):
    if case.kind == "not_found":
        exc = expect_error(lambda: call(case), anthropic.NotFoundError, 404)
    else:
        exc = expect_error(
            lambda: call(case, key="sk-not-a-switchyard-key"),
            anthropic.AuthenticationError,
            401,
        )
    # The SDK keeps the parsed envelope: `{"type": "error", "error": {"type", "message"}}`.
    body = exc.body if isinstance(exc.body, dict) else {}
    check(body.get("type") == "error", f"the error body is not an Anthropic envelope: {exc.body!r}")
    return error_summary(exc, (body.get("error") or {}).get("type"))


def models(case):
    """`GET /v1/models` and `GET /v1/models/{model}` in Anthropic's shape."""
    c = client(case)
    listed = list(c.models.list())
    one = c.models.retrieve(case.model)
    for model in listed + [one]:
        # Anthropic's ModelInfo: `type` is always "model"; an OpenAI-shaped entry has none.
        check(model.type == "model", f"not an Anthropic model entry: {model!r}")
        check_text(model.display_name, "display_name")
    check(one.id == case.model, f"retrieved {one.id!r} for {case.model!r}")
    return {"models": sorted(model.id for model in listed), "retrieved": one.id}


def count_tokens(case):
    """`POST /v1/messages/count_tokens`."""
    counted = client(case).messages.count_tokens(model=case.model, messages=MESSAGES)
    check_tokens(counted.input_tokens, "input_tokens")
    return {"input_tokens": counted.input_tokens}


if __name__ == "__main__":
    run(
        "anthropic",
        {
            "ok": messages,
            "tool": messages,
            "not_found": errors,
            "unauthorized": errors,
            "models": models,
            "count_tokens": count_tokens,
        },
    )
