"""ChatGPT accounts: token claims, the in-memory pool that picks an account, OAuth token calls."""
