# Sourced by scripts/test and scripts/demo: a project-local virtual environment, created on first use
# and refreshed when pyproject.toml changes.  Needs only python3 (>= 3.11) with its venv module.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${MITY_COST_VENV:-.venv}"
EXTRAS="${1:-}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating $VENV (first run only)..." >&2
    python3 -m venv "$VENV"
fi
stamp="$VENV/.mity-cost-installed${EXTRAS:+-$EXTRAS}"
wanted="$(cat pyproject.toml | cksum)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "Installing mity-cost${EXTRAS:+ with [$EXTRAS]} into $VENV..." >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}"
    echo "$wanted" > "$stamp"
fi
