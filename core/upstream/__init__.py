"""HTTP transport to the Codex backend and OAuth server (curl_cffi, TLS impersonation)."""
