"""What the API tests share: tokens, a providers document with a secret to keep, the auth header."""

from __future__ import annotations

from typing import Any

ADMIN_TOKEN = "admin-token-0123456789abcdef"
READ_TOKEN = "read-token-fedcba9876543210"
PROVIDER_SECRET = "sk-test-provider-secret-5f3c9a"
URL_PASSWORD = "url-password-77aa"

PROVIDERS: dict[str, Any] = {
    "version": 1,
    "strategy": "priority_based",
    "providers": {
        "fast": {"type": "local_mock", "priority": 1, "latency_ms": 0, "limits": {"requests_per_hour": 5}},
        "backup": {"type": "local_mock", "priority": 2, "latency_ms": 0, "model": "mock-2"},
        "remote": {
            "type": "openai_compatible",
            "priority": 9,
            "capabilities": ["summarization"],
            "base_url": f"http://user:{URL_PASSWORD}@127.0.0.1:9/v1?token={URL_PASSWORD}",
            "api_key_env": "SB_TEST_REMOTE_KEY",
            "model": "gpt-test",
            "timeout_s": 1,
        },
    },
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
