#!/usr/bin/env bash
# Make sure libtorch (from PyPI torch==2.11.0) is installed in the per-user cache, once, and
# print the environment that builds tch 0.24 against it.
#
# usage: eval "$(scripts/libtorch.sh)"     # sets LIBTORCH_USE_PYTORCH, PATH, TORCH_VENV
#
# The venv lives in ${ULMFIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ulmfit-rs}/torch-2.11.0 so every
# clone on the machine shares it (about 4.6 GB; 1-2 minutes to install). Idempotent.
set -euo pipefail
TORCH_VERSION=2.11.0
CACHE=${ULMFIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ulmfit-rs}
VENV=$CACHE/torch-$TORCH_VERSION
PY=${PYTHON:-python3}

have_torch() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$TORCH_VERSION" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("torch").split("+")[0] == sys.argv[1] else 1)
PYEOF
}

if ! have_torch; then
  echo "libtorch: installing torch==$TORCH_VERSION into $VENV (once; ~4.6 GB)" >&2
  mkdir -p "$CACHE"
  # Install into a temporary venv and rename, so an interrupted install is never half-used.
  TMP=$VENV.tmp.$$
  rm -rf "$TMP"
  "$PY" -m venv "$TMP"
  "$TMP/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" >&2
  rm -rf "$VENV"
  # venvs hard-code their path in scripts; re-create the launcher files at the final path.
  mv "$TMP" "$VENV"
  "$PY" -m venv --upgrade "$VENV" >/dev/null
  have_torch || { echo "libtorch: install failed" >&2; exit 2; }
fi
TORCH_LIB=$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin), "lib"))')
echo "export TORCH_VENV='$VENV'"
echo "export LIBTORCH_USE_PYTORCH=1"
echo "export TORCH_LIB='$TORCH_LIB'"
echo "export PATH='$VENV/bin':\"\$PATH\""
