"""`cozy doctor`: checks that each say ok / warn / fail and the fix."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Annotated, Any

import typer

from cozy.cli._common import console, personality_catalog, print_json, run_async, state
from cozy.core.errors import CozyError
from cozy.engines.base import VoiceEngine

EXTRAS = {
    "server": ("litestar", "cozy serve"),
    "tui": ("textual", "cozy chat"),
    "voice": ("sounddevice,faster_whisper,piper", "cozy voice"),
    "webrtc": ("fastrtc", "cozy serve --webrtc"),
    "mem0": ("mem0", "memory provider mem0"),
    "cognee": ("cognee", "knowledge provider cognee"),
    "memobase": ("memobase", "profile provider memobase"),
}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)


def doctor_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check config, storage, the model, extras and audio; name the fix for each failure."""
    checks = run_async(run_checks)
    if as_json:
        print_json(checks)
    else:
        from rich.markup import escape  # `cozy[voice]` is text, not a style tag

        marks = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
        out = console()
        for c in checks:
            out.print(f"{marks[c['status']]} {escape(c['name'])}: {escape(str(c['detail']))}")
            if c.get("fix") and c["status"] != "ok":
                out.print(f"      fix: {escape(str(c['fix']))}")
    if any(c["status"] == "fail" for c in checks):
        raise typer.Exit(1)


def _installed(extra: str) -> bool:
    modules = EXTRAS[extra][0]
    return all(importlib.util.find_spec(m) is not None for m in modules.split(","))


def extras_status() -> list[dict[str, Any]]:
    out = []
    for extra, (_module, what) in EXTRAS.items():
        found = _installed(extra)
        out.append(
            {
                "name": f"extra {extra}",
                "status": "ok" if found else "warn",
                "detail": f"installed ({what})" if found else f"not installed ({what})",
                "fix": f"./install.sh --extras {extra}",
            }
        )
    return out


def _check(name: str, status: str, detail: str, fix: str = "") -> dict[str, Any]:
    return {"name": name, "status": status, "detail": detail, "fix": fix}


async def run_checks() -> list[dict[str, Any]]:
    from cozy.runtime import Runtime
    from cozy.storage.store import Store

    s = state.settings()
    checks: list[dict[str, Any]] = []
    try:
        cfg = Runtime.load_config(s)
        checks.append(_check("config", "ok", " + ".join(str(p) for p in s.engines_files)))
    except CozyError as exc:
        checks.append(_check("config", "fail", str(exc), "fix the file named above"))
        return checks
    try:
        checks.append(_check("personalities", "ok", ", ".join(sorted(personality_catalog()))))
    except SystemExit:
        checks.append(
            _check(
                "personalities",
                "fail",
                "a profile file is invalid",
                "run `cozy personalities list` to see which",
            )
        )
    try:
        store = await Store.open(s.db_url, busy_timeout_ms=s.db_busy_timeout_ms)
        status = await store.migration_status()
        await store.close()
        checks.append(
            _check(
                "storage",
                "ok",
                f"{s.public_dict()['database']} ({len(status['applied'])} migrations)",
            )
        )
    except CozyError as exc:
        checks.append(_check("storage", "fail", str(exc), exc.hint or ""))
    from cozy.storage.pg_admin import deployment_checks  # vector path, Redis (issue #12)

    checks.extend(_check(**c) for c in await deployment_checks(s.db_url, s.redis_url))
    checks.append(await _model_check(cfg, s))
    checks.append(await _embedded_check(cfg))
    kinds = [
        k
        for k in ("knowledge", "profile", "memory", "tools", "embed", "voice")
        if cfg.section(k).active and cfg.section(k).provider not in THIRD_PARTY.get(k, ())
    ]
    checks.extend(await _engine_checks(s, cfg, kinds))
    checks.extend(await _third_party_checks(cfg, s))
    checks.extend(extras_status())
    checks.append(_audio_check())
    return checks


async def _model_check(cfg: Any, s: Any) -> dict[str, Any]:
    from cozy.runtime.models import model_router

    router = model_router(cfg, s)
    try:
        route = await router.resolve(s.model)
        health = await asyncio.wait_for(route.engine.health_check(), 60)  # local: loads
        why = f" [why: {route.reason}]" if route.reason else ""
        if not health.ok:
            return _check("model", "fail", f"{route.label}: {health.detail}{why}", health.fix)
        served = [m.id for m in await asyncio.wait_for(route.engine.list_models(), 10)]
        if not _served(route.model, served):
            return _check(
                "model",
                "fail",
                f"{route.label}: the server is up but does not serve '{route.model}' "
                f"(it serves: {', '.join(served[:8]) or 'nothing'})",
                _not_served_fix(route.label, route.model, served),
            )
        return _check("model", "ok", f"{route.label} served {health.detail}{why}".strip())
    except (CozyError, TimeoutError) as exc:
        hint = getattr(exc, "hint", "") or ""
        return _check("model", "fail", str(exc), hint)
    finally:
        await router.close()


async def _embedded_check(cfg: Any) -> dict[str, Any]:
    """The embedded model (ai.local): file, hash, window and load time, whatever answers."""
    from cozy.engines.registry import EngineFactory

    options = {"timeout": cfg.ai.timeout, **cfg.ai.providers.get("local", {})}
    engine = EngineFactory().create("ai", "local", options)
    try:
        health = await asyncio.wait_for(engine.health_check(), 60)
    except (CozyError, TimeoutError) as exc:
        return _check("embedded model", "warn", str(exc), getattr(exc, "hint", "") or "")
    finally:
        await engine.close()
    return _check("embedded model", "ok" if health.ok else "warn", health.detail, health.fix)


def _served(model: str, served: list[str]) -> bool:
    """Ollama names `llama3.2` and `llama3.2:latest` the same model; a file path (the
    embedded model's `local:/path/x.gguf`) is served by its file."""
    if model.endswith(".gguf") and Path(model).expanduser().is_file():
        return True
    names = set(served) | {m.removesuffix(":latest") for m in served}
    return model in names or model.removesuffix(":latest") in names


def _not_served_fix(label: str, model: str, served: list[str]) -> str:
    provider = label.split(":", 1)[0]
    if provider == "ollama":
        return f"ollama pull {model}"
    if served:
        return (
            f"use one it serves (`cozy run -m {provider}:{served[0]} ...`, or "
            f"`ai.providers.{provider}.default_model` in engines.yaml), or load '{model}' "
            "on the server"
        )
    return f"load '{model}' on the server"


async def _engine_checks(s: Any, cfg: Any, kinds: list[str]) -> list[dict[str, Any]]:
    """Each configured engine's own health check, built by the runtime with its deps."""
    from cozy.runtime import Runtime

    try:
        rt = await Runtime.open(s)
    except CozyError as exc:
        return [_check("engines", "fail", str(exc), exc.hint or "")]
    out: list[dict[str, Any]] = []
    try:
        for kind in kinds:
            name = f"{kind} ({cfg.section(kind).provider})"
            try:
                engine = await rt.engine(kind)
                if engine is None:
                    continue
                if isinstance(engine, VoiceEngine):
                    out.extend(await _voice_checks(name, engine))
                    continue
                health = await asyncio.wait_for(engine.health_check(), 10)
            except (CozyError, TimeoutError) as exc:
                # voice without its extra (a default install) is missing, not broken: warn
                missing = kind == "voice" and not _installed("voice")
                status = "warn" if missing else "fail"
                out.append(_check(name, status, str(exc), getattr(exc, "hint", "") or ""))
                continue
            status = "ok" if health.ok else "warn"
            out.append(_check(name, status, health.detail or "healthy", health.fix))
    finally:
        await rt.close()
    return out


async def _voice_checks(name: str, engine: Any) -> list[dict[str, Any]]:
    """The voice engine's own diagnosis: active STT/TTS, model files, a self-test.
    `ok` for the voice line only when every part passes (recognition included)."""
    try:
        # loading Whisper and Piper, then a spoken sentence read back: seconds, not 10 s
        parts = await asyncio.wait_for(engine.diagnose(), 120)
    except (CozyError, TimeoutError) as exc:
        # without the voice extra (a default install) voice is missing, not broken: warn
        worst = "fail" if _installed("voice") else "warn"
        return [_check(name, worst, str(exc) or "timed out", getattr(exc, "hint", "") or "")]
    # a broken self-test means voice does not understand: fail; a fallback engine that
    # still passes it is degraded: warn
    status = {label: "ok" if h.ok else ("fail" if "self-test" in label else "warn")
              for label, h in parts}  # fmt: skip
    if not _installed("voice"):
        # voice is an optional extra: its fallbacks being poor is a warning on a default
        # install, never a failure of cozy
        status = {label: "warn" if st == "fail" else st for label, st in status.items()}
    worst = "fail" if "fail" in status.values() else "warn" if "warn" in status.values() else "ok"
    failed = [(label, h) for label, h in parts if not h.ok]
    summary = (await engine.health_check()).detail
    if failed:
        summary += " — " + ", ".join(label for label, _ in failed) + " failed"
    out = [_check(name, worst, summary, failed[0][1].fix if failed else "")]
    out.extend(_check(label, status[label], h.detail, h.fix) for label, h in parts)
    return out


def _audio_check() -> dict[str, Any]:
    import importlib.util

    if importlib.util.find_spec("sounddevice") is None:
        return _check("audio", "warn", "sounddevice not installed", "./install.sh --extras voice")
    try:
        import sounddevice as sd

        devices = sd.query_devices()
        inputs = [d for d in devices if d.get("max_input_channels", 0) > 0]
        outputs = [d for d in devices if d.get("max_output_channels", 0) > 0]
    except Exception as exc:  # PortAudio missing or no devices
        return _check(
            "audio",
            "warn",
            f"no audio devices ({exc})",
            "voice works with files: `cozy voice --input in.wav --output out.wav`",
        )
    if not inputs or not outputs:
        return _check(
            "audio",
            "warn",
            f"{len(inputs)} input / {len(outputs)} output devices",
            "voice works with files: `cozy voice --input in.wav --output out.wav`",
        )
    return _check("audio", "ok", f"{len(inputs)} input / {len(outputs)} output devices")


# Third-party context providers (issue #10): extra, selection and live health.
THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "memory": ("mem0",),
    "knowledge": ("cognee",),
    "profile": ("memobase",),
}
_PROVIDER_EXTRA = {"mem0": "mem0", "cognee": "cognee", "memobase": "memobase"}


async def _third_party_checks(cfg: Any, s: Any) -> list[dict[str, Any]]:
    """Each third-party provider: not selected / extra missing / healthy / failing."""
    import importlib.util

    out: list[dict[str, Any]] = []
    for kind, providers in THIRD_PARTY.items():
        section = cfg.section(kind)
        for provider in providers:
            name = f"{kind} ({provider})"
            extra = _PROVIDER_EXTRA[provider]
            module = "mem0" if provider == "mem0" else provider
            installed = importlib.util.find_spec(module) is not None
            selected = section.active and section.provider == provider
            if not selected:
                state = "extra installed" if installed else "extra not installed"
                out.append(
                    _check(
                        name,
                        "ok",
                        f"not selected ({state})",
                        f"enable with `{kind}: {{provider: {provider}}}` in engines.yaml",
                    )
                )
                continue
            if not installed and provider != "cognee":
                out.append(
                    _check(
                        name, "fail", "selected but not installed", f"./install.sh --extras {extra}"
                    )
                )
                continue
            out.append(await _runtime_engine_check(kind, provider, s))
    return out


async def _runtime_engine_check(kind: str, provider: str, s: Any) -> dict[str, Any]:
    """Health through a runtime, so the provider gets the AI/embed engines it uses."""
    from cozy.runtime import Runtime

    name = f"{kind} ({provider})"
    rt = None
    try:
        rt = await Runtime.open(s, engines=False)
        engine = await rt.engine(kind)
        if engine is None:
            return _check(name, "fail", "not active", f"set `{kind}.enabled: true`")
        health = await asyncio.wait_for(engine.health_check(), 60)
    except (CozyError, TimeoutError) as exc:
        return _check(name, "fail", str(exc), getattr(exc, "hint", "") or "")
    finally:
        if rt is not None:
            await rt.close()
    return _check(name, "ok" if health.ok else "fail", health.detail or "healthy", health.fix)
