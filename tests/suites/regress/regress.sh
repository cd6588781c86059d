#!/bin/sh
# Test-only guest program (tests/test_confirm.py). Reads $KPIPE_LOCALVERSION (-s0 is the
# base) and $KPIPE_ATTEMPT; prints KTAP: one case that passes at the base and fails on every
# attempt elsewhere.
echo "KTAP version 1"
echo "1..1"
case "$KPIPE_LOCALVERSION" in
  *-s0) echo "ok 1 holds" ;;
  *) echo "# attempt $KPIPE_ATTEMPT on a patched step: failing on purpose"; echo "not ok 1 holds" ;;
esac
