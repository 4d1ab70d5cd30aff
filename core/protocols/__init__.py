"""Protocol translators: one module per client API, each with the same shape.

Every module offers ``parse_request`` (client body → ``Turn``), ``render_response`` (collected
Codex turn → client body), ``StreamTranslator`` (Codex events → client stream bytes) and
``render_error`` (any failure → the client's own error envelope). They are pure: no I/O.
"""
