#!/usr/bin/env bash
# Creates the virtual environment and installs idcbench with its test extra.
# Java (METEOR and the PTB tokenizer need it) is installed with apt-get where that is possible.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "idcbench: Java is missing; installing default-jre-headless with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null
  else
    echo "idcbench: Java is missing (METEOR and the PTB tokenizer need it); run: sudo apt-get install -y default-jre-headless" >&2
    exit 2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q -e ".[test]"
