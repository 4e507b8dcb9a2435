"""Put text on the clipboard from a terminal app, wherever the app runs.

Textual's `copy_to_clipboard` writes the OSC 52 escape; terminals that ignore it
(macOS Terminal, some tmux setups, older VTE) lose the copy silently. So the system
clipboard tool is tried first when there is one (pbcopy, wl-copy, xclip, xsel,
clip.exe), then OSC 52 is written as well (it also reaches the local terminal over
ssh, where no local tool can). Inside tmux, OSC 52 is wrapped in tmux's passthrough
so it reaches the outer terminal. Written here because pyperclip covers the tools but
not OSC 52, and the tool lookup is a few lines.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess

TOOL_TIMEOUT_S = 2.0

# (command, needs) in the order tried; `needs` is an environment variable that must
# be set for the tool to reach a clipboard (a display server)
_TOOLS: list[tuple[list[str], str | None]] = [
    (["pbcopy"], None),
    (["wl-copy"], "WAYLAND_DISPLAY"),
    (["xclip", "-selection", "clipboard"], "DISPLAY"),
    (["xsel", "--clipboard", "--input"], "DISPLAY"),
    (["clip.exe"], None),
]


def system_tool() -> list[str] | None:
    """The clipboard command usable here, or None."""
    if os.environ.get("COZY_CLIPBOARD") == "osc52":  # the user opted out of tools
        return None
    for cmd, needs in _TOOLS:
        if needs and not os.environ.get(needs):
            continue
        if shutil.which(cmd[0]):
            return cmd
    return None


def copy_with_tool(text: str) -> str | None:
    """Copy with the system tool; returns its name, or None when none worked."""
    cmd = system_tool()
    if cmd is None:
        return None
    try:
        done = subprocess.run(
            cmd,
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return cmd[0] if done.returncode == 0 else None


def osc52(text: str) -> str:
    """The escape that asks the terminal to set its clipboard (wrapped for tmux)."""
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    seq = f"\x1b]52;c;{payload}\a"
    if os.environ.get("TMUX"):
        return "\x1bPtmux;" + seq.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return seq
