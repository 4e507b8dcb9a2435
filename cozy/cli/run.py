"""`cozy run`: one-shot prompts for the terminal and for scripts.

This module is the command line only; what the flags mean is in run_inputs, the turn
in run_turn, and what is printed in run_output / run_render.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cozy.cli import complete
from cozy.cli._common import run_async
from cozy.cli.pairs import PairsCommand, pairs

# kept importable from here (`cozy tools call` asks on the terminal the same way)
from cozy.cli.run_turn import tty_approver, tty_elicitor

if TYPE_CHECKING:
    from cozy.cli.run_output import RunOutput

__all__ = ["register", "start_background_jobs", "tty_approver", "tty_elicitor"]


def register(app: typer.Typer) -> None:
    @app.command("run", cls=PairsCommand)
    def run_cmd(
        prompt: Annotated[list[str] | None, typer.Argument(help="the prompt (or stdin)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
        stream: Annotated[bool, typer.Option("--stream", help="with --json: JSON lines")] = False,
        session: Annotated[
            str,
            typer.Option(
                "--session",
                "-s",
                help="new, last, or an id (or its start)",
                autocompletion=complete.sessions,
            ),
        ] = "new",
        continue_: Annotated[
            bool, typer.Option("--continue", "-c", help="continue the last session (= -s last)")
        ] = False,
        personality: Annotated[
            str | None,
            typer.Option("--personality", "-p", autocompletion=complete.personalities),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(
                "--model", "-m", help="provider:model or alias", autocompletion=complete.models
            ),
        ] = None,
        system: Annotated[
            str | None, typer.Option("--system", help="extra system instructions")
        ] = None,
        fragment: Annotated[
            list[str] | None,
            typer.Option(
                "--fragment",
                "-f",
                help="text for the prompt: a file, a directory, an http(s) URL, or - (stdin); "
                "repeat. `@FILE` in the prompt does the same",
            ),
        ] = None,
        attach: Annotated[
            list[str] | None,
            typer.Option(
                "--attach",
                "-a",
                help="an image (PNG/JPEG/GIF/WebP) for a vision model, or a text/PDF/HTML "
                "file, URL or - ; repeat",
            ),
        ] = None,
        template: Annotated[
            str | None,
            typer.Option(
                "--template",
                "-t",
                help="a prompt template (cozy templates list)",
                autocompletion=complete.templates,
            ),
        ] = None,
        param: Annotated[
            list[str] | None,
            typer.Option(
                "--param",
                "-P",
                metavar="NAME VALUE",
                help="a value for the template's $NAME; repeat",
            ),
        ] = None,
        option: Annotated[
            list[str] | None,
            typer.Option(
                "--option",
                "-o",
                metavar="KEY VALUE",
                help="temperature, top_p, max_tokens, seed, stop (e.g. -o temperature 0.2); repeat",
            ),
        ] = None,
        schema: Annotated[
            str | None,
            typer.Option(
                "--schema",
                help="answer as JSON: a JSON Schema (file or inline) or 'name, age int, bio: ...'",
            ),
        ] = None,
        schema_multi: Annotated[
            str | None,
            typer.Option("--schema-multi", help="like --schema, a list of them under `items`"),
        ] = None,
        no_md: Annotated[
            bool, typer.Option("--no-md", help="plain text on a terminal (no Markdown, spinner)")
        ] = False,
        no_context: Annotated[
            bool, typer.Option("--no-context", help="skip memory, profile and knowledge")
        ] = False,
        allow_tools: Annotated[
            list[str] | None, typer.Option("--allow-tools", help="tool globs allowed (repeat)")
        ] = None,
        yes: Annotated[
            bool,
            typer.Option("--yes", "-y", help="approve the write/network tools --allow-tools names"),
        ] = False,
        yes_dangerous: Annotated[
            bool,
            typer.Option("--yes-dangerous", help="with --yes: approve dangerous ones too"),
        ] = False,
        mcp_prompt: Annotated[
            str | None,
            typer.Option(
                "--prompt",
                help="an MCP prompt, SERVER.NAME; leading key=value words are its arguments",
            ),
        ] = None,
        resource: Annotated[
            list[str] | None,
            typer.Option("--resource", help="attach an MCP resource SERVER:URI (repeat)"),
        ] = None,
        tool_logs: Annotated[
            str,
            typer.Option(
                "--tool-logs",
                metavar="LEVEL",
                help="show what MCP servers log during their calls, at least LEVEL "
                "(debug … emergency, as `cozy tools logs --level`), or off",
            ),
        ] = "info",
    ) -> None:
        """Send one prompt and print the answer (streamed), or JSON with --json."""
        from cozy.cli.run_inputs import InputFlags, prepare
        from cozy.cli.run_output import RunOutput
        from cozy.cli.run_render import sink
        from cozy.cli.run_turn import Approval, McpInput, RunArgs
        from cozy.core.errors import UsageError

        out = RunOutput(as_json, stream, None if as_json else sink(no_md))
        if continue_ and session == "new":
            session = "last"
        prompt_args: list[str] = []
        if mcp_prompt:  # `--prompt srv.name city=Paris extra words`
            from cozy.core.mcp_input import split_words

            prompt_args, prompt = split_words(list(prompt or []))
        flags = InputFlags(
            words=list(prompt or []),
            fragments=list(fragment or []),
            attachments=list(attach or []),
            template=template,
            params=pairs(param),
            options=pairs(option),
            schema=schema,
            schema_multi=schema_multi,
        )
        try:
            got = prepare(flags)
        except UsageError as exc:
            raise typer.Exit(out.error(_usage(str(exc)), code=2)) from None
        from cozy.core.toollive import LOG_CHOICES

        if tool_logs not in LOG_CHOICES:
            why = f"unknown --tool-logs level {tool_logs!r}: use one of {', '.join(LOG_CHOICES)}"
            raise typer.Exit(out.error(_usage(why), code=2))
        if (yes or yes_dangerous) and not allow_tools:
            raise typer.Exit(
                out.error(
                    _usage(
                        "--yes approves only the tools --allow-tools names; add --allow-tools "
                        "GLOB (e.g. --allow-tools 'fs.*' --yes), or leave --yes out to be asked"
                    ),
                    code=2,
                )
            )
        if not got.text.strip() and not got.fragments and not mcp_prompt:
            raise typer.Exit(
                out.error(
                    _usage(
                        "the prompt is empty: pass it as an argument or on stdin "
                        '(e.g. `cozy run "hello"` or `echo hello | cozy run`)'
                    ),
                    code=2,
                )
            )
        args = RunArgs(
            text=got.text,
            session=session,
            personality=personality or got.personality,
            model=model or got.model,
            system="\n\n".join(s for s in (got.system, system) if s) or None,
            no_context=no_context,
            allow_tools=allow_tools,
            approval=Approval(yes or yes_dangerous, yes_dangerous),
            mcp=McpInput((mcp_prompt, prompt_args) if mcp_prompt else None, resource or []),
            options=got.options,
            images=got.images,
            input_meta=got.input_meta,
            fragments=got.fragments,
            schema=got.schema,
            tool_log_level=tool_logs,
        )
        _go(args, out)


def _go(args: Any, out: RunOutput) -> None:
    from cozy.cli.run_turn import run_turn

    # Start-up makes ~100k long-lived objects (imports): collecting them while they
    # are made is wasted work (~15% of a one-shot run). Once the turn has started they
    # are frozen (kept out of every later collection) and collection is on again.
    gc.disable()
    try:
        # `out` prints the JSON error object (stream: an event)
        code = run_async(lambda: run_turn(args, out), as_json=False)
    except typer.Exit as exc:
        if exc.exit_code == 130:  # Ctrl-C: the promised JSON error, partial text
            out.interrupted()
        raise
    finally:
        out.sink.pause()  # a spinner never outlives the run
        gc.unfreeze()  # as it was (matters when called in-process, e.g. by tests)
        gc.enable()
    start_background_jobs()
    if code:
        raise typer.Exit(code)


def _usage(message: str) -> dict[str, Any]:
    return {"type": "invalid_request_error", "code": "invalid_request", "message": message}


def start_background_jobs() -> None:
    """Memory extraction and profile updates for people who only use `cozy run`.

    The turn queued durable jobs; instead of waiting for them (a model call each,
    seconds with a local model) the answer is printed first and a detached `cozy jobs
    run --background` drains them after this process exits. It holds a lock in the
    data dir, so runs in a row start at most one; COZY_BACKGROUND_JOBS=0 turns it off
    (the jobs then wait for `cozy jobs run`, the TUI or the server).
    """
    from cozy.cli._common import state
    from cozy.storage.jobs import queued_count

    if not queued_count():
        return
    settings = state.settings()
    if not settings.background_jobs or settings.redis_url or settings.database_url:
        return  # server mode: the server's own workers run the jobs
    from cozy.cli.jobs import spawn_background_worker

    spawn_background_worker(settings, state.overrides)
