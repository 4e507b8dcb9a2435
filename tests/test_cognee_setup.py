"""knowledge.cognee's derived LLM and embedding configs (cognee_setup.py): read from a
real engines.yaml through the AI and embed providers' Options models. Needs no cognee:
these functions only translate cozy's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from cozy.core.errors import ConfigError
from cozy.engines.config import EnginesConfig, load_engines_config
from cozy.engines.knowledge.cognee_setup import embedding_config, llm_config


def config_of(tmp_path: Path, text: str) -> tuple[Path, EnginesConfig]:
    f = tmp_path / "e.yaml"
    f.write_text(text, encoding="utf-8")
    return f, load_engines_config([f])


def test_configs_follow_the_provider_options(tmp_path: Path) -> None:
    _, config = config_of(
        tmp_path,
        "ai:\n  providers:\n    ollama: {host: 'http://h:1/'}\n"
        "    openai: {base_url: 'http://o:2/v1/', api_key: sk-x}\n"
        "embed:\n  provider: ollama\n  host: 'http://e:3'\n  dimensions: 384\n",
    )
    assert llm_config("ollama", "m", config)["llm_endpoint"] == "http://h:1/v1"
    openai = llm_config("openai", "g", config)
    assert openai["llm_endpoint"] == "http://o:2/v1" and openai["llm_api_key"] == "sk-x"
    assert embedding_config(config) == {
        "embedding_provider": "ollama",
        "embedding_endpoint": "http://e:3/api/embed",
        "embedding_model": "nomic-embed-text",
        "embedding_dimensions": 384,
    }


def test_a_misspelt_ai_option_is_refused_at_its_line(tmp_path: Path) -> None:
    f, config = config_of(tmp_path, "ai:\n  providers:\n    ollama:\n      hots: 'http://h:1'\n")
    with pytest.raises(ConfigError) as err:
        llm_config("ollama", "m", config)
    msg = str(err.value)
    assert f"{f}:4: ai.providers.ollama.hots: unknown key (allowed: " in msg and "host" in msg


def test_a_misspelt_embed_option_is_refused_at_its_line(tmp_path: Path) -> None:
    f, config = config_of(tmp_path, "embed:\n  provider: openai\n  modle: text-embedding-3-large\n")
    with pytest.raises(ConfigError) as err:
        embedding_config(config)
    msg = str(err.value)
    assert f"{f}:3: embed.modle: unknown key (allowed: " in msg and "model" in msg
