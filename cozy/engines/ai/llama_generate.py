"""One generation on the loaded model (runs on the llama worker thread).

The token loop is cozy's own rather than `create_completion(stream=True)`: cozy needs
the stop flag checked between tokens, exact token counts, and to know *which* stop
sequence ended the text (the tool-call marker starts the grammar-constrained call);
the binding's streaming loop also re-scans the whole text for stop sequences at every
token. Sampling, grammars and the KV-cache prefix reuse are llama-cpp-python's.

Tool calls: the tools are described in the system prompt with one format,
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Qwen's and Hermes's own).
Text streams freely until the model writes the marker; then the call itself is
generated under a grammar built from the tools' JSON schemas, so its name is one of
the tools and its arguments match that tool's schema. `tool_choice: required` (or a
named tool) starts the answer with the marker.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from typing import Any, cast

from cozy.core.errors import ContextTooLarge
from cozy.engines.ai.llama_load import CHATML, Loaded
from cozy.engines.ai.llama_runner import Job

TOOL_OPEN = "<tool_call>"
CALL_MAX_TOKENS = 512


@dataclass(slots=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None


@dataclass(slots=True)
class Plan:
    """Everything a generation needs, built on the event loop from cozy's request."""

    model: str
    messages: list[dict[str, Any]]
    sampling: Sampling = field(default_factory=Sampling)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    grammar: str | None = None  # GBNF for the text (response_format)
    call_schema: dict[str, Any] | None = None  # JSON schema of one tool call, when offered
    force_call: bool = False


@dataclass(slots=True)
class Final:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    call: dict[str, Any] | None = None  # {"name": wire name, "arguments": {...}}


class StopMatcher:
    """Finds stop sequences in streamed text, holding back what may be the start of one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        buf = self.held + text
        hit: tuple[int, str] | None = None
        for s in self.stops:
            i = buf.find(s)
            if i != -1 and (hit is None or i < hit[0]):
                hit = (i, s)
        if hit is not None:
            self.held = ""
            return buf[: hit[0]], hit[1]
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:k]):
                    keep = k
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], None

    def flush(self) -> str:
        text, self.held = self.held, ""
        return text


def render(loaded: Loaded, messages: list[dict[str, Any]]) -> str:
    """The prompt through the GGUF's chat template (system merged into the first user
    message for templates that refuse a system role; ChatML if the template fails)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    try:
        return str(loaded.formatter(messages=messages).prompt)
    except Exception:  # a template's raise_exception() or a Jinja error
        pass
    merged = _merge_system(messages)
    try:
        return str(loaded.formatter(messages=merged).prompt)
    except Exception:
        fallback = Jinja2ChatFormatter(CHATML, "", "")
        return str(fallback(messages=cast(Any, messages)).prompt)


def _merge_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    elif system:
        rest.insert(0, {"role": "user", "content": system})
    return rest


def run(job: Job, loaded: Loaded, plan: Plan) -> None:
    """Stream text (str items) then one `Final` to the job."""
    llm = loaded.llm
    prompt = render(loaded, plan.messages)
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    window = loaded.n_ctx
    if len(tokens) >= window:
        raise ContextTooLarge(
            f"the prompt is {len(tokens):,} tokens; local:{plan.model}'s window is {window:,}",
            hint="start a new session (`-s new`), shorten the prompt, or use a model with a "
            "larger window (`ai.providers.local.n_ctx` up to the model's own)",
        )
    if plan.sampling.seed is not None:
        # a seed asks for a repeatable answer, but llama.cpp's logits depend on how the
        # prompt was batched: the binding re-evaluates only what differs from the last
        # prompt, and the same greedy prompt answered "3. 3" fresh and "3. 4" from the
        # cache. So a seeded request evaluates its whole prompt.
        llm.reset()
    room = window - len(tokens)
    limit = min(plan.max_tokens or room, room)
    made = 0
    text = ""
    if not plan.force_call:
        stops = [*plan.stop, *([TOOL_OPEN] if plan.call_schema else [])]
        grammar = _grammar(plan.grammar) if plan.grammar else None
        text, reason, made = _stream(job, loaded, tokens, plan.sampling, grammar, stops, limit)
        if reason != TOOL_OPEN:
            finish = reason if reason in ("length", "cancelled") else "stop"
            job.emit(Final(finish, len(tokens), made))
            return
    if plan.call_schema is None or job.stopped():
        job.emit(Final("cancelled", len(tokens), made))
        return
    call_prompt = llm.tokenize((prompt + text + TOOL_OPEN).encode("utf-8"), False, True)
    if len(call_prompt) >= window:
        job.emit(Final("length", len(tokens), made))
        return
    grammar = _grammar(_schema_gbnf(plan.call_schema))
    budget = min(CALL_MAX_TOKENS, window - len(call_prompt))
    call_sampling = Sampling(0.0, 1.0, 1, 0.0, 1.0, plan.sampling.seed)  # greedy, in grammar
    raw, reason, n = _stream(
        job, loaded, call_prompt, call_sampling, grammar, [], budget, emit=False
    )
    made += n
    if reason == "cancelled":
        job.emit(Final("cancelled", len(tokens), made))
        return
    try:
        call = json.loads(raw)
    except ValueError:
        job.emit(Final("length", len(tokens), made))  # the call was cut by the window
        return
    job.emit(Final("tool_calls", len(tokens), made, call))


def _stream(
    job: Job,
    loaded: Loaded,
    tokens: list[int],
    sampling: Sampling,
    grammar: Any,
    stops: list[str],
    limit: int,
    *,
    emit: bool = True,
) -> tuple[str, str, int]:
    """Generate up to `limit` tokens: (text, why it ended, tokens made).

    Why: "stop" (end of generation), "length", "cancelled", or the stop sequence met."""
    import llama_cpp

    llm = loaded.llm
    vocab = llm._model.vocab
    if sampling.seed is not None:
        llm.set_seed(sampling.seed)
    matcher = StopMatcher(stops)
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    out: list[str] = []
    made = 0
    reason = "length"
    gen = llm.generate(
        tokens,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        min_p=sampling.min_p,
        temp=sampling.temperature,
        repeat_penalty=sampling.repeat_penalty,
        # checked by llama-cpp-python after each token is sampled: a stop request ends the
        # generation before another token is decoded
        stopping_criteria=llama_cpp.StoppingCriteriaList([lambda _ids, _logits: job.stopped()]),
        grammar=grammar,
    )
    try:
        for token in gen:
            if job.stopped():
                job.tokens_after_stop += 1
                reason = "cancelled"
                break
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                reason = "stop"
                break
            made += 1
            job.made += 1
            piece, hit = matcher.feed(decode(llm.detokenize([token])))
            if piece:
                out.append(piece)
                if emit:
                    job.emit(piece)
            if hit is not None:
                reason = hit
                break
            if made >= limit:
                break
        else:
            reason = "cancelled" if job.stopped() else "stop"
    finally:
        gen.close()
    if reason not in stops:
        tail = matcher.flush()
        if tail:
            out.append(tail)
            if emit:
                job.emit(tail)
    return "".join(out), reason, made


def _grammar(gbnf: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(gbnf, verbose=False)


def _schema_gbnf(schema: dict[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return str(json_schema_to_gbnf(json.dumps(schema)))
