"""`cozy serve`: the OpenAI-compatible server (Litestar on uvicorn)."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from cozy.cli._common import fail, state


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        host: Annotated[str, typer.Option("--host", help="address to bind")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="port to bind")] = 8000,
        workers: Annotated[int, typer.Option("--workers", min=1, help="worker processes")] = 1,
        no_auth: Annotated[
            bool, typer.Option("--no-auth", help="no API keys (loopback addresses only)")
        ] = False,
        otel: Annotated[
            str | None, typer.Option("--otel", help="span exporter: none, console or otlp")
        ] = None,
        webrtc: Annotated[
            bool, typer.Option("--webrtc", help="also serve WebRTC voice at /rtc (FastRTC)")
        ] = False,
    ) -> None:
        """Serve the OpenAI-compatible API (chat, models, embeddings) and cozy's APIs."""
        try:
            import litestar  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            fail(
                "`cozy serve` needs the optional extra 'server': run `./install.sh` again "
                "(every install includes it), or `uv pip install 'cozy[server]'`"
            )
        from cozy.core.errors import CozyError
        from cozy.server.config import ServerSettings

        # CLI flags → environment, so every worker process builds the same settings
        env = {
            "COZY_SERVER_HOST": host,
            "COZY_SERVER_PORT": str(port),
            "COZY_SERVER_WORKERS": str(workers),
        }
        if no_auth:
            env["COZY_SERVER_NO_AUTH"] = "1"
        if otel:
            env["COZY_SERVER_OTEL_EXPORTER"] = otel
        if webrtc:
            import importlib.util

            if importlib.util.find_spec("fastrtc") is None:
                fail(
                    "`cozy serve --webrtc` needs the optional extra 'webrtc': "
                    "install it with `uv pip install 'cozy[webrtc]'`"
                )
            env["COZY_SERVER_WEBRTC"] = "1"
        for key, value in state.overrides.items():
            if value is not None:
                env[f"COZY_{key.upper()}"] = str(value)
        # worker processes rebuild settings and logging from the environment
        env["COZY_LOG_FORMAT"] = "json"
        env["COZY_LOG_LEVEL"] = _level()
        os.environ.update(env)
        try:
            server = ServerSettings()
            server.check_bind()
        except CozyError as exc:
            fail(str(exc), code=exc.exit_code)
        except ValueError as exc:
            fail(f"invalid server setting: {exc}", code=2)
        settings = state.settings(log_format="json", log_level=_level())
        from cozy.observability.logging import setup_server_logging

        setup_server_logging(settings.log_level, "json")
        if settings.database_url or settings.redis_url:  # server mode: fail fast and clearly
            from cozy.cli._common import run_async
            from cozy.storage.pg_admin import preflight

            run_async(lambda: preflight(settings.db_url, settings.redis_url))
        _banner(host, port, workers, no_auth, str(settings.data_dir))
        _run(server)


def _level() -> str:
    return os.environ.get("COZY_LOG_LEVEL", "INFO")


def _banner(host: str, port: int, workers: int, no_auth: bool, data_dir: str) -> None:
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    err = sys.stderr
    if not err.isatty():  # a log collector reads stderr: JSON lines only
        import logging

        log = logging.getLogger("cozy.server")
        log.info(
            "serving",
            extra={"url": url, "base_url": f"{url}/v1", "data_dir": data_dir, "workers": workers},
        )
        if no_auth:
            log.warning("authentication is off (--no-auth): callers act as the local admin")
        return
    err.write(f"cozy serving on {url}  (OpenAI base URL: {url}/v1, docs: {url}/schema)\n")
    err.write(f"  data: {data_dir}  workers: {workers}\n")
    if no_auth:
        err.write(
            "  WARNING: AUTHENTICATION IS OFF (--no-auth): anyone who can reach this "
            "address acts as the local admin\n"
        )
    else:
        err.write(
            "  get a key: cozy keys create --user NAME   "
            "(then OPENAI_BASE_URL=" + url + "/v1 OPENAI_API_KEY=<key>)\n"
        )
    err.flush()


def _run(server: object) -> None:
    import uvicorn

    from cozy.server.config import ServerSettings

    assert isinstance(server, ServerSettings)
    _stop_on_hangup()
    uvicorn.run(
        "cozy.server.app:create_app_from_env",
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers if server.workers > 1 else None,
        timeout_graceful_shutdown=int(server.graceful_timeout),
        log_config=None,
        access_log=False,
        proxy_headers=False,
        lifespan="on",
    )


def _stop_on_hangup() -> None:
    """SIGHUP (the terminal closed, a supervisor's reload) stops like SIGTERM: stop
    accepting, let answers finish for the grace period, then save what is left as
    interrupted. uvicorn handles only SIGINT/SIGTERM; without this a hang-up kills the
    process mid-answer."""
    import signal

    import uvicorn.server

    hup = getattr(signal, "SIGHUP", None)
    if hup is not None and hup not in uvicorn.server.HANDLED_SIGNALS:
        handled: Any = (*uvicorn.server.HANDLED_SIGNALS, hup)
        uvicorn.server.HANDLED_SIGNALS = handled
