"""Build: make the .config (kconfig), build the kernel (make), read its diagnostics."""
