#!/usr/bin/env bash
# The typed contract of the package (run by scripts/test.sh):
# 1. mypy's stubtest: python/duplex/_engine.pyi matches the built native module exactly
#    (signatures, defaults, classes, __all__);
# 2. pyright --verifytypes: at least 99 % of duplex's public symbols have complete types.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=.venv/bin/python
# pyright finds the installed package only from inside the virtual environment.
export VIRTUAL_ENV="$ROOT/.venv" PATH="$ROOT/.venv/bin:$PATH"
# The pinned pyright wheel (test extra) bundles pyright itself and runs it with the
# system's `node` (scripts/setup.sh installs nodejs where it is missing): nothing is
# downloaded. Without node it would fetch one (nodeenv), which an offline machine cannot.
command -v node >/dev/null || { echo "typecheck: pyright needs node on PATH (apt-get install nodejs)" >&2; exit 1; }
export PYRIGHT_PYTHON_IGNORE_WARNINGS=1  # no look-up of the newest pyright release

echo "== stubtest duplex._engine =="
"$PY" -m mypy.stubtest duplex._engine

echo "== pyright --verifytypes duplex (at least 99 %) =="
report=$(mktemp)
trap 'rm -f "$report"' EXIT
# Exits non-zero whenever a symbol is incomplete; the score is what we hold it to.
.venv/bin/pyright --verifytypes duplex --ignoreexternal --outputjson >"$report" || true
"$PY" - "$report" <<'PYEOF'
import json, sys

try:
    data = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit("pyright --verifytypes gave no report:\n" + open(sys.argv[1]).read()[-2000:])
completeness = data["typeCompleteness"]
score = completeness["completenessScore"]
counts = completeness["exportedSymbolCounts"]
print(f"type completeness {score:.1%}: {counts['withKnownType']} known, "
      f"{counts['withAmbiguousType']} ambiguous, {counts['withUnknownType']} unknown")
for symbol in completeness["symbols"]:
    if not symbol["isTypeKnown"] and symbol.get("isExported", True):
        for diag in symbol.get("diagnostics", [])[:1]:
            print(f"  {symbol['name']}: {diag['message'].splitlines()[0]}")
if score < 0.99:
    sys.exit(f"pyright --verifytypes: {score:.1%} is below 99 %")
PYEOF
