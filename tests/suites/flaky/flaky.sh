#!/bin/sh
# Test-only guest program (tests/test_confirm.py). Reads $KPIPE_LOCALVERSION (the step:
# -s0 is the base) and $KPIPE_ATTEMPT (which run on this kernel, from the guest runner).
# Prints KTAP: one case that passes at the base, and elsewhere fails on attempt 1 only.
echo "KTAP version 1"
echo "1..1"
case "$KPIPE_LOCALVERSION:$KPIPE_ATTEMPT" in
  *-s0:*) echo "ok 1 settles" ;;
  *:1) echo "# attempt 1 on a patched step: failing on purpose"; echo "not ok 1 settles" ;;
  *) echo "ok 1 settles # attempt $KPIPE_ATTEMPT" ;;
esac
