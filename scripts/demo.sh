#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the offline demo: a spoken WAV goes through
# duplex's virtual device as the microphone, comes out as 16 kHz chunks, is played back as
# the "model's answer" with a barge-in halfway, and the device's output is written to a WAV.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
.venv/bin/duplex demo "$@"
