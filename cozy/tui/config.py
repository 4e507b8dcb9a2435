"""tui.yaml in the config dir: key remapping and theme.

keys:            # binding id -> keys (comma separated); ids are listed in the help screen
  app.new_session: ctrl+n
  prompt.send: enter
  app.talk: f6      # push-to-talk
theme: textual-dark
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cozy.core.yamlconf import load_model


class TuiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: dict[str, str] = Field(default_factory=dict)
    theme: str | None = None


def load_tui_config(config_dir: Path) -> TuiConfig:
    path = config_dir / "tui.yaml"
    if not path.is_file():
        return TuiConfig()
    return load_model(TuiConfig, path)
