"""engines.yaml, personalities and settings: precedence and file:line:field errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import opened

from cozy.core.errors import ConfigError, NotFoundError
from cozy.core.personalities import PersonalityCatalog
from cozy.engines.ai.router import ModelRouterImpl
from cozy.engines.config import load_engines_config
from cozy.engines.registry import EngineFactory
from cozy.settings import Settings, load_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_config_and_profiles_are_valid() -> None:
    s = Settings()
    cfg = load_engines_config(s.engines_files)
    assert cfg.memory.timeout == 0.4 and cfg.profile.timeout == 0.3
    assert cfg.knowledge.timeout == 0.5
    items = PersonalityCatalog([s.packaged_profiles_dir]).all()
    assert len(items) >= 3 and "assistant" in items


def test_user_file_overrides_packaged_file_key_by_key(cozy_home: Path) -> None:
    write(
        cozy_home / "engines.yaml", "ai:\n  model: ollama:qwen2.5\ncontext:\n  token_budget: 2048\n"
    )
    s = Settings()
    assert s.engines_files[-1] == cozy_home / "engines.yaml"
    cfg = load_engines_config(s.engines_files)
    assert cfg.ai.model == "ollama:qwen2.5" and cfg.context.token_budget == 2048
    assert cfg.context.recent_messages == 20  # kept from the packaged file
    assert "llama" in cfg.ai.aliases


def test_bad_value_names_file_line_and_field(tmp_path: Path) -> None:
    bad = write(tmp_path / "e.yaml", "ai:\n  provider: ollama\ncontext:\n  token_budget: lots\n")
    with pytest.raises(ConfigError) as err:
        load_engines_config([bad])
    msg = str(err.value)
    assert f"{bad}:4: context.token_budget" in msg and "valid integer" in msg
    assert err.value.exit_code == 2


def test_unknown_key_lists_the_allowed_ones(tmp_path: Path) -> None:
    bad = write(tmp_path / "e.yaml", "ai:\n  provider: ollama\n  temprature: 3\n")
    with pytest.raises(
        ConfigError,
        match=r"e.yaml:3: ai.temprature: unknown key \(allowed: .*"
        r"aliases.*model",
    ):
        load_engines_config([bad])


async def test_unknown_provider_option_names_file_line_and_allowed_keys(cozy_home: Path) -> None:
    """A provider's options are checked against its Options model when the runtime
    builds the engine: a misspelt option is an error at its line, not ignored."""
    from cozy.runtime import Runtime

    user = write(cozy_home / "engines.yaml", "tools:\n  provider: builtin\n  timeuot: 3\n")
    with pytest.raises(ConfigError) as err:
        await Runtime.open(Settings())
    msg = str(err.value)
    assert f"{user}:3: tools.timeuot: unknown key (allowed: disabled, max_output_chars" in msg
    assert err.value.exit_code == 2
    # a malformed value too, for a provider the router builds (ai.providers.*)
    write(
        cozy_home / "engines.yaml",
        "ai:\n  provider: ollama\n  model: m\n  providers:\n"
        "    ollama:\n      host: http://127.0.0.1:9\n      max_retries: many\n",
    )
    async with opened(Settings()) as rt:
        with pytest.raises(ConfigError, match=r"engines.yaml:7: ai.providers.ollama.max_retries"):
            await rt.router.resolve(None)


def test_voice_parts_options_are_checked_against_their_provider(tmp_path: Path) -> None:
    """voice.stt/tts are tagged by `provider` (the default one when left out): a misspelt
    option is refused at its line with that provider's keys, a misspelt provider too."""
    from cozy.engines.voice.options import PiperOptions, SphinxOptions, VoiceOptions

    f = write(
        tmp_path / "e.yaml",
        "voice:\n  provider: local\n  stt: {provider: pocketsphinx, grammar: [stop, go]}\n"
        "  tts:\n    speed: 1.5\n    voise: nova\n",
    )
    cfg = load_engines_config([f])
    with pytest.raises(ConfigError) as err:
        cfg.validate_options(VoiceOptions, cfg.voice.options, ("voice",))
    assert f"{f}:6: voice.tts.voise: unknown key (allowed: fallback, model, noise_scale" in str(
        err.value
    )
    f.write_text("voice:\n  stt:\n    provider: whisper\n", encoding="utf-8")
    cfg = load_engines_config([f])
    with pytest.raises(ConfigError, match=rf"{f}:2: voice.stt: unknown STT provider \(use one"):
        cfg.validate_options(VoiceOptions, cfg.voice.options, ("voice",))
    f.write_text("voice:\n  stt: {grammar: [stop]}\n  vad: {aggresiveness: 3}\n", encoding="utf-8")
    cfg = load_engines_config([f])
    with pytest.raises(
        ConfigError, match=r"e.yaml:2: voice.stt.grammar: unknown key \(allowed: .*beam"
    ):
        cfg.validate_options(VoiceOptions, cfg.voice.options, ("voice",))
    # over the packaged file, a part naming another provider replaces the packaged part
    # (whisper's model/language are not pocketsphinx options); the same provider merges
    packaged = Settings().engines_files[0]
    user = write(
        tmp_path / "u.yaml", "voice:\n  stt: {provider: pocketsphinx}\n  tts: {speed: 2}\n"
    )
    merged = load_engines_config([packaged, user])
    parts = merged.validate_options(VoiceOptions, merged.voice.options, ("voice",))
    assert isinstance(parts.stt, SphinxOptions)
    assert isinstance(parts.tts, PiperOptions) and (parts.tts.speed, parts.tts.threads) == (2, 1)
    ok = {"stt": {"provider": "pocketsphinx", "grammar": ["yes"]}, "tts": {"speed": 2}}
    opts = VoiceOptions.of(ok, "voice")
    assert isinstance(opts.stt, SphinxOptions) and opts.stt.grammar == ["yes"]
    assert isinstance(opts.tts, PiperOptions) and opts.tts.speed == 2.0


def test_malformed_yaml(tmp_path: Path) -> None:
    bad = write(tmp_path / "e.yaml", "ai:\n  provider: [ollama\n")
    with pytest.raises(ConfigError, match=r"e.yaml:\d+: invalid YAML"):
        load_engines_config([bad])


def test_env_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_HOST", "http://10.0.0.5:11434")
    f = write(
        tmp_path / "e.yaml",
        "ai:\n  providers:\n    ollama: {host: '${MY_HOST}', key: '${NOPE:-fallback}'}\n",
    )
    cfg = load_engines_config([f])
    assert cfg.ai.providers["ollama"] == {"host": "http://10.0.0.5:11434", "key": "fallback"}


def test_unknown_provider_lists_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"known ai providers: .*ollama.*openai"):
        EngineFactory().create("ai", "gemini", {})


def test_model_routing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = write(tmp_path / "e.yaml", "ai:\n  provider: ollama\n  aliases: {fast: 'openai:gpt-x'}\n")
    router = ModelRouterImpl(load_engines_config([f]), EngineFactory())
    assert router.split("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert router.split("ollama:llama3.2:3b") == ("ollama", "llama3.2:3b")
    assert router.split("llama3.2:3b") == ("ollama", "llama3.2:3b")
    assert router.split("fast") == ("openai", "gpt-x")
    assert router.split(None) == ("ollama", "llama3.2")
    auto = ModelRouterImpl(
        load_engines_config([write(tmp_path / "a.yaml", "ai: {}\n")]), EngineFactory()
    )
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # no Ollama: the embedded model
    assert auto.default_provider == "local"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert auto.split(None) == ("openai", "gpt-4o-mini")


def test_router_refuses_a_misspelt_provider_option(tmp_path: Path) -> None:
    """The router reads `host` and `default_model` through the provider's Options model:
    a misspelt key is an error at its line naming the allowed keys, not a silent default."""
    f = write(
        tmp_path / "e.yaml",
        "ai:\n  provider: ollama\n  providers:\n    ollama:\n      default_modle: qwen\n",
    )
    router = ModelRouterImpl(load_engines_config([f]), EngineFactory())
    want = (
        rf"{f}:5: ai.providers.ollama.default_modle: unknown key \(allowed: .*default_model.*host"
    )
    with pytest.raises(ConfigError, match=want):
        router.split(None)
    with pytest.raises(ConfigError, match=want):
        _ = router.choice
    ok = write(
        tmp_path / "ok.yaml",
        "ai:\n  provider: ollama\n  providers:\n    ollama: {default_model: qwen, host: 'h:1'}\n",
    )
    router = ModelRouterImpl(load_engines_config([ok]), EngineFactory())
    assert router.split(None) == ("ollama", "qwen")
    assert router._ollama_host() == "http://h:1"


def test_personality_errors(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    d.mkdir()
    write(d / "odd.yaml", "id: odd\nname: Odd\nsystem_prompt: hi\noptions: {temperature: 9}\n")
    with pytest.raises(ConfigError, match=r"odd.yaml:4: options.temperature"):
        PersonalityCatalog([d]).all()
    (d / "odd.yaml").unlink()
    write(d / "mine.yaml", "id: other\nname: X\nsystem_prompt: hi\n")
    with pytest.raises(ConfigError, match="does not match the file name"):
        PersonalityCatalog([d]).all()
    (d / "mine.yaml").unlink()
    write(d / "mine.yaml", "id: mine\nname: Mine\nsystem_prompt: hi\ntools: ['fs.*']\n")
    cat = PersonalityCatalog([d])
    assert cat.get("mine").allows_tool("fs.read_file") and not cat.get("mine").allows_tool("x.y")
    with pytest.raises(NotFoundError, match="known personalities: mine"):
        cat.get("nope")


def test_settings_precedence(cozy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COZY_MODEL", "ollama:from-env")
    assert load_settings().model == "ollama:from-env"
    assert load_settings(model="openai:from-flag").model == "openai:from-flag"
    s = load_settings()
    assert s.data_dir == cozy_home and str(cozy_home) in s.db_url
    monkeypatch.setenv("COZY_DATABASE_URL", "postgresql://bob:hunter2@db/cozy")
    assert "hunter2" not in str(load_settings().public_dict())
