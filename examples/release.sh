#!/usr/bin/env bash
# release.sh: deploy the pending schema, smoke-test it, revert if the smoke test fails.
# Set BLUEGREEN_CONFIG, BLUEGREEN_ENV and SMOKE_TEST (a command that exercises the application).
set -u
field() { python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

bluegreen plan >&2 || exit $?                   # the migrations, estimates and free disk, for the log
out=$(bluegreen deploy --json); code=$?         # add --wait when [cutover] wait_flag is set
case $code in
  0) echo "deployed: $(field message <<<"$out")" >&2 ;;
  3) echo "refused, blue still active, nothing changed: $(field error <<<"$out")" >&2; exit 3 ;;
  4) echo "another bluegreen is running; try again later" >&2; exit 4 ;;
  6) echo "deployed, but a post hook failed (do not deploy again): $(field error <<<"$out")" >&2 ;;
  *) echo "deploy failed: $(field error <<<"$out")" >&2; bluegreen status >&2; exit "$code" ;;
esac

if ! sh -c "$SMOKE_TEST"; then
  echo "smoke test failed: reverting" >&2
  if bluegreen revert --json >/dev/null; then
    echo "reverted: the previous generation is active again" >&2
  else
    bluegreen status >&2                        # exit 5: see "On call" in the README
  fi
  exit 1
fi
echo "released; run 'bluegreen finalize' once the revert window is no longer needed" >&2
