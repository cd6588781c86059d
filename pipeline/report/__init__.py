"""Reports a maintainer reads, rendered from one run record (results.json) alone.

Reads a run directory (its results.json and the logs the record names, paths relative to the
run dir); writes nothing itself. Modules: `text` (untrusted text: ANSI stripping, escaping,
capping), `model` (the per-step matrix every renderer shares), `html` (the per-run page),
`viewer` (index and two-run comparison over all runs), `serve` (the viewer over HTTP),
`mail`, `markdown`, `junit`, `kcidb`, and `render` (what `kpipe report` calls).
"""
