#!/usr/bin/env bash
# Every test, on a fresh machine, by itself: prepares the Python tools the suites run (moto's
# server, with IAM enforced from template.yaml; schemathesis; cfn-lint) in a venv under target/,
# once per pinned version, then runs `cargo test --workspace` with any extra arguments. Each suite
# starts its own moto on a free port; the Node packages of the simulator's conformance test are
# installed by that test itself (`npm ci`).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="moto[server]==5.2.1 cfn-lint==1.51.0 schemathesis==4.32.5"
VENV=target/test-tools/venv

if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$TOOLS" ]; then
  echo "==> test tools into $VENV: $TOOLS"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086 # one argument per requirement
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $TOOLS
  echo "$TOOLS" >"$VENV/.installed"
fi
export PATH="$PWD/$VENV/bin:$PATH"

exec cargo test --workspace "$@"
