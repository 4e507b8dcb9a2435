"""Testing helpers for cozy and its plugins.

`FakeModelServer` is a real HTTP server speaking the OpenAI and Ollama APIs with
scriptable replies, so real SDK clients can be tested without a model:

    with FakeModelServer() as fake:
        fake.queue_reply("hi", tool_calls=[("get_time", {"tz": "UTC"})])
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="x")

In pytest, use the `fake_model` fixture from `cozy.testing.pytest_plugin`.
Run it standalone with `python -m cozy.testing --port 11434`.
"""

from __future__ import annotations

from cozy.testing.script import UNSET, ChatView, Reply, Rule, ScriptedCall
from cozy.testing.server import DEFAULT_MODELS, FakeModelServer, RecordedRequest

__all__ = [
    "DEFAULT_MODELS",
    "UNSET",
    "ChatView",
    "FakeModelServer",
    "RecordedRequest",
    "Reply",
    "Rule",
    "ScriptedCall",
]
