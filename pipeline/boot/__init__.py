"""Boot: boot a built kernel under virtme-ng, run the guest suites, read KTAP and splats."""
