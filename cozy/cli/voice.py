"""`cozy voice`: push-to-talk (or hands-free with --vad) on the mic and speaker, or
one turn from a WAV file to a WAV file. Turns go through the orchestrator, so the
transcript and the answer are saved to the session like text chat."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli._common import capable, console, print_json, run_async, runtime, state

if TYPE_CHECKING:
    import asyncio

    from cozy.core.events import TurnError
    from cozy.engines.capabilities import TranscribesClips
    from cozy.engines.voice.io import Sink
    from cozy.engines.voice.pipeline import TurnResult
    from cozy.runtime import Runtime

voice_app = typer.Typer(
    help="Talk to cozy: push-to-talk on the mic/speaker, or --input/--output WAV files.",
    invoke_without_command=True,
)

STATES = {
    "listening": "[bold green]● listening[/]",
    "transcribing": "[yellow]… transcribing[/]",
    "thinking": "[cyan]… thinking[/]",
    "speaking": "[magenta]♪ speaking[/]  (Enter: interrupt)",
    "interrupted": "[red]■ interrupted[/]",
    "no_speech": "[dim]no speech heard[/]",
    "idle": "[dim]press Enter to talk, Ctrl-C to quit[/]",
}


def register(app: typer.Typer) -> None:
    app.add_typer(voice_app, name="voice")


@voice_app.callback()
def voice_cmd(
    ctx: typer.Context,
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="WAV/FLAC/OGG to use instead of the mic")
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the spoken answer to this WAV")
    ] = None,
    vad: Annotated[
        bool, typer.Option("--vad", help="hands-free: the end of speech ends the turn")
    ] = False,
    personality: Annotated[str | None, typer.Option("--personality", "-p")] = None,
    session: Annotated[str, typer.Option("--session", "-s", help="new, last or an id")] = "new",
    model: Annotated[str | None, typer.Option("--model", "-m", help="provider:model")] = None,
    device_in: Annotated[
        str | None, typer.Option("--mic", help="input device (index/name)")
    ] = None,
    device_out: Annotated[
        str | None, typer.Option("--speaker", help="output device (index/name)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="file mode: one JSON result")] = False,
) -> None:
    """Push-to-talk voice chat (Enter to talk and to stop; Enter while cozy speaks interrupts)."""
    if ctx.invoked_subcommand is not None:
        return
    _require_voice_extra(as_json)
    opts = {
        "personality": personality,
        "session": session,
        "model": model,
        "mic": device_in,
        "speaker": device_out,
        "vad": vad,
    }
    if input_file is not None:
        code = run_async(
            lambda: _file_turn(input_file, output_file, opts, as_json), as_json=as_json
        )
    else:
        code = run_async(lambda: _live(output_file, opts))
    if code:
        raise typer.Exit(code)


# what `cozy voice` imports from the voice extra (audio I/O, decoding, resampling)
VOICE_MODULES = ("soundfile", "soxr", "sounddevice")


def _require_voice_extra(as_json: bool) -> None:
    """One line naming the install command instead of an ImportError traceback."""
    import importlib.util

    missing = []
    for module in VOICE_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if not missing:
        return
    message = (
        f"cozy voice needs the optional extra 'voice' ({', '.join(missing)} missing): "
        "install it with `./install.sh --extras voice` (or `uv pip install 'cozy[voice]'`)"
    )
    if as_json:
        print_json({"error": {"code": "missing_extra", "message": message}})
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(1)


@voice_app.command("devices")
def devices_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """List microphones and speakers."""
    from cozy.core.errors import CozyError
    from cozy.engines.voice.devices import list_devices

    try:
        devices = list_devices()
    except CozyError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        print_json([d.to_dict() for d in devices])
        return
    out = console()
    if not devices:
        out.print("no sound devices found")
        from cozy.engines.voice.devices import FILE_MODE_HINT

        out.print(FILE_MODE_HINT)
        raise typer.Exit(1)
    for d in devices:
        marks = ("  [default in]" if d.default_input else "") + (
            "  [default out]" if d.default_output else ""
        )
        out.print(
            f"{d.index:>3}  {d.name}  in={d.inputs} out={d.outputs} {d.default_rate:.0f} Hz{marks}"
        )


async def _engine(rt: Runtime) -> TranscribesClips:
    from cozy.engines.capabilities import TranscribesClips

    return await capable(rt, "voice", TranscribesClips)


class _Asker:
    """Runs one orchestrator turn per transcript and keeps the session across turns."""

    def __init__(self, rt: Runtime, opts: dict[str, Any]) -> None:
        self.rt = rt
        self.opts = opts
        self.session: str = str(opts.get("session") or "new")
        self.error: TurnError | None = None
        self.done: dict[str, Any] = {}

    async def ask(self, transcript: str) -> AsyncIterator[str]:
        from cozy.core.events import Done, Failed, Started, TextDelta
        from cozy.core.orchestrator import ChatRequest
        from cozy.core.types import Caller

        settings = state.settings()
        req = ChatRequest(
            prompt=transcript,
            caller=Caller(user_id=settings.user, face="voice"),
            session=self.session,
            personality=self.opts.get("personality"),
            model=self.opts.get("model") or settings.model,
        )
        self.error, self.done = None, {}
        events = self.rt.orchestrator.run(req)
        try:
            async for event in events:
                if isinstance(event, Started):
                    self.session = event.session_id
                elif isinstance(event, TextDelta):
                    yield event.text
                elif isinstance(event, Done):
                    self.done = {"session_id": event.session_id, "message_id": event.message_id,
                                 "model": event.model, "timings": event.timings}  # fmt: skip
                elif isinstance(event, Failed):
                    self.error = event.error
        finally:
            await events.aclose()


def _result_dict(result: TurnResult, asker: _Asker) -> dict[str, Any]:
    return {
        "transcript": result.transcript,
        "answer": result.answer,
        "status": result.status,
        "session_id": asker.session if asker.session != "new" else None,
        "message_id": asker.done.get("message_id"),
        "audio_seconds": round(result.audio_seconds, 3),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "error": asker.error,
    }


async def _file_turn(inp: Path, out: Path | None, opts: dict[str, Any], as_json: bool) -> int:
    import asyncio

    from cozy.engines.voice.audio import decode
    from cozy.engines.voice.pipeline import voice_turn

    clip = await asyncio.to_thread(decode, inp, what=f"input file {inp}")
    async with runtime() as rt:
        engine = await _engine(rt)
        if opts["vad"]:
            spans = await engine.speech_spans(clip)
            if spans:
                clip = clip.at(16_000)
                first, last = int(spans[0].start * 16_000), int(spans[-1].end * 16_000)
                clip = type(clip)(clip.samples[max(0, first - 4800) : last + 4800], 16_000)
        sink = _file_sink(engine.output_rate, out, opts.get("speaker"), as_json)
        asker = _Asker(rt, opts)
        err = console(stderr=True)
        try:
            result = await voice_turn(
                engine, clip, asker.ask, sink, language=_language(rt, opts.get("personality"))
            )
        finally:
            if sink is not None:
                await sink.close()
        data = _result_dict(result, asker)
        if as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(f"you: {result.transcript or '(no speech heard)'}\n")
            if result.answer:
                sys.stdout.write(f"cozy: {result.answer}\n")
            if out is not None and result.answer:
                err.print(f"[dim]answer spoken to {out} ({result.audio_seconds:.1f} s)[/]")
        if asker.error:
            sys.stderr.write(f"error: {asker.error.message}\n")
            return 1
        if result.status == "no_speech":
            sys.stderr.write(
                "error: no speech was recognised in the input "
                "(check that it is speech, 16 kHz or more, not silence)\n"
            )
            return 1
    return 0


def _file_sink(rate: int, out: Path | None, speaker: str | None, as_json: bool) -> Sink | None:
    """Where a file-mode answer is spoken: the --output WAV, else the speaker, else
    nowhere (text only): `--json` without `--output` never needs a sound device."""
    from cozy.engines.voice.devices import AudioDeviceError, pick_device
    from cozy.engines.voice.io import SpeakerSink, WavSink

    if out is not None:
        return WavSink(out, rate)
    if as_json and speaker is None:
        return None
    try:
        pick_device(speaker, kind="output")
    except AudioDeviceError:
        if speaker is not None:
            raise  # a named speaker that is not there is an error, not a silent fallback
        sys.stderr.write("note: no speaker found; answering in text only\n")
        return None
    return SpeakerSink(rate, speaker)


def _language(rt: Runtime, personality: str | None) -> str | None:
    """The personality's `voice.language` (None: the engine's setting, e.g. auto)."""
    from cozy.core.errors import CozyError

    try:
        chosen = rt.personalities.get(personality or rt.orchestrator.default_personality)
    except CozyError:
        return None  # an unknown personality is reported by the turn itself
    return chosen.voice.language


async def _keys(queue: asyncio.Queue[str]) -> None:
    """Enter presses from the terminal, as events (a thread reads stdin)."""
    import asyncio

    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if line == "":
            await queue.put("eof")
            return
        await queue.put("enter")


async def _live(out: Path | None, opts: dict[str, Any]) -> int:
    import asyncio

    from rich.live import Live

    from cozy.engines.voice.devices import pick_device
    from cozy.engines.voice.io import SpeakerSink, WavSink, mic_source
    from cozy.engines.voice.pipeline import record_utterance, voice_turn

    mic = opts.get("mic")
    pick_device(mic, kind="input")  # no microphone: a clear error before anything loads
    async with runtime() as rt:
        engine = await _engine(rt)
        sink: Sink = (
            WavSink(out, engine.output_rate, realtime=True)
            if out is not None
            else SpeakerSink(engine.output_rate, opts.get("speaker"))
        )
        asker = _Asker(rt, opts)
        language = _language(rt, opts.get("personality"))
        keys: asyncio.Queue[str] = asyncio.Queue()
        reader = asyncio.create_task(_keys(keys))
        status = {"state": "idle", "level": -100.0}
        con = console()

        def line() -> str:
            bars = int(max(0.0, status["level"] + 60) / 3)  # type: ignore[operator]
            meter = "▮" * bars + "·" * (20 - bars) if status["state"] == "listening" else ""
            return f"{STATES.get(str(status['state']), status['state'])}  {meter}"

        def say(state_name: str, _info: dict[str, Any]) -> None:
            status["state"] = state_name
            live.update(line())

        def level(db: float) -> None:

            status["level"] = db
            live.update(line())

        try:
            with Live(line(), console=con, refresh_per_second=12, transient=False) as live:
                barge = False
                while True:
                    if not barge and not opts["vad"] and await keys.get() == "eof":
                        return 0
                    barge = False
                    stop = asyncio.Event()
                    say("listening", {})
                    stopper = asyncio.create_task(_stop_on_key(keys, stop))
                    clip = await record_utterance(
                        engine, mic_source(mic), use_vad=bool(opts["vad"]), stop=stop, level=level
                    )
                    stopper.cancel()
                    interrupt = asyncio.Event()
                    watcher = asyncio.create_task(_stop_on_key(keys, interrupt))
                    result = await voice_turn(
                        engine, clip, asker.ask, sink, status=say, interrupt=interrupt,
                        language=language,
                    )  # fmt: skip
                    watcher.cancel()
                    if result.transcript:
                        live.console.print(f"[bold]you:[/] {result.transcript}")
                    if result.answer:
                        live.console.print(f"[bold]cozy:[/] {result.answer}")
                    if asker.error:
                        live.console.print(f"[red]error:[/] {asker.error.message}")
                    barge = result.status == "interrupted"  # listen again at once
                    say("idle", {})
        finally:
            reader.cancel()
            await sink.close()


async def _stop_on_key(keys: asyncio.Queue[str], event: asyncio.Event) -> None:
    await keys.get()
    event.set()
