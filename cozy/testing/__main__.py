"""`python -m cozy.testing --port 11434 [--latency 0.05] [--tps 200]`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    import importlib.util

    if importlib.util.find_spec("litestar") is None:
        raise SystemExit(
            "python -m cozy.testing: the fake model server needs the `server` extra "
            "(run ./install.sh again: every install includes it); to chat without a model server, "
            'cozy runs its embedded model: cozy run "hi"'
        )
    from cozy.testing.server import DEFAULT_MODELS, FakeModelServer

    parser = argparse.ArgumentParser(
        prog="python -m cozy.testing",
        description="Run cozy's fake model server (OpenAI and Ollama APIs).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before first token")
    parser.add_argument("--tps", type=float, default=None, help="tokens per second")
    parser.add_argument("--model", action="append", help="model name to serve (repeatable)")
    parser.add_argument("--api-key", default=None, help="require this key on /v1 requests")
    parser.add_argument("--dims", type=int, default=384, help="embedding dimensions")
    args = parser.parse_args(argv)
    server = FakeModelServer(
        latency=args.latency,
        tokens_per_second=args.tps,
        models=args.model or DEFAULT_MODELS,
        api_key=args.api_key,
        embedding_dims=args.dims,
    )
    print(f"fake model server on http://{args.host}:{args.port} (OpenAI at /v1, Ollama at /api)")
    server.serve_forever(port=args.port, host=args.host)


if __name__ == "__main__":
    main()
