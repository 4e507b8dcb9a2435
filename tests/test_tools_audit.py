"""What the audit keeps of a tool call: secrets redacted by key and by shape, bounded
excerpts (the end-to-end rows are checked in test_tools_terminal / test_tools_mcp_more)."""

from __future__ import annotations

import json

from cozy.core.toolaudit import (
    ARGS_LIMIT,
    RESULT_LIMIT,
    approver,
    args_excerpt,
    redact_args,
    result_excerpt,
)


def test_secrets_redacted_by_key_name_and_by_value_pattern() -> None:
    args = {
        "path": "notes/todo.md",
        "api_key": "anything at all",
        "headers": {"Authorization": "Bearer abc", "X-Trace": "t-1"},
        "text": "use sk-proj-0123456789abcdefghij and ghp_abcdefghijklmnopqrstuvwxyz012345",
        "items": ["AKIAABCDEFGHIJKLMNOP", "plain"],
        "note": "token in prose: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig",
    }
    out = redact_args(args)
    assert out["path"] == "notes/todo.md" and out["api_key"] == "***"
    assert out["headers"] == {"Authorization": "***", "X-Trace": "t-1"}
    assert out["text"] == "use *** and ***"
    assert out["items"] == ["***", "plain"]
    assert "eyJ" not in out["note"] and "Bearer" not in out["note"]
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"
    assert redact_args({"body": f"see {key} ok"}) == {"body": "see *** ok"}


def test_excerpts_are_bounded() -> None:
    big = {"text": "x" * 10_000}
    assert len(args_excerpt(big)) < ARGS_LIMIT + 40
    assert json.loads(args_excerpt({"a": 1})) == {"a": 1}
    result = result_excerpt("y" * 5000 + " sk-abcdefghijklmnop1234")
    assert result.startswith("y" * RESULT_LIMIT) and "more characters" in result
    assert result_excerpt("the key is sk-abcdefghijklmnop1234") == "the key is ***"


def test_approver_says_who_allowed_it() -> None:
    who = approver("auto-approved", "cli", "coder", "ada")
    assert who == {
        "face": "cli",
        "personality": "coder",
        "user": "ada",
        "by": "--yes with --allow-tools",
    }
    assert approver("policy-deny", "server", None, "bob")["by"] == "the face policy"
