"""`/template NAME [key=value...] [text]`: a prompt template (the same files `cozy run
-t` reads, in the config dir's templates/) sent as the next turn; `/template` alone
lists them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cozy.tui.host import TurnExtras, busy_warning
from cozy.tui.screens.info import InfoScreen

if TYPE_CHECKING:
    from cozy.tui.host import Host


class TemplateCommand:
    def __init__(self, host: Host) -> None:
        self.host = host

    def directory(self) -> Path:
        return Path(self.host.settings.config_dir) / "templates"

    async def run(self, arg: str) -> None:
        from cozy.core import genopts, mcp_input
        from cozy.core.errors import CozyError
        from cozy.core.templates import TemplateStore

        host = self.host
        store = TemplateStore(self.directory())
        words = arg.split()
        try:
            if not words:
                self._list(store)
                return
            template = store.get(words[0])
            pairs, rest = mcp_input.split_words(words[1:])
            params = dict(p.split("=", 1) for p in pairs)
            prompt, system = template.render(" ".join(rest), params)
            options = genopts.parse((k, str(v)) for k, v in template.options.items())
        except CozyError as exc:
            hint = f" ({exc.hint})" if getattr(exc, "hint", None) else ""
            host.notify(f"{exc}{hint}", severity="error", timeout=10)
            return
        if busy_warning(host):
            return
        host.send(
            prompt,
            TurnExtras(
                system=system,
                options=options,
                model=template.model,
                personality=template.personality,
            ),
        )

    def _list(self, store: object) -> None:
        from cozy.core.templates import TemplateStore

        assert isinstance(store, TemplateStore)
        lines = []
        for name in store.names():
            try:
                t = store.get(name)
            except Exception as exc:  # one bad file must not hide the others
                lines.append(f"{name}  (unreadable: {exc})")
                continue
            params = " ".join(f"{v}=" for v in t.variables())
            lines.append(f"{name}  {params}\n    {t.description}")
        body = "\n".join(lines) or (
            f"no templates yet in {self.directory()}\n"
            "create one with `cozy templates set NAME --prompt '...$input'`"
        )
        self.host.push_screen(InfoScreen("Templates (/template NAME key=value... text)", body))
