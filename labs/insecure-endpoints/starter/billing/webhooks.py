"""Calling a user's webhook."""
import json
import urllib.request

TIMEOUT_SECONDS = 3
BODY_PREVIEW = 200


def call(url: str, payload: dict) -> dict:
    """POST the payload to the URL; what it answered (status and the start of its body)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "invoicely-webhooks"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return {"status": response.status, "body": response.read(BODY_PREVIEW).decode("utf-8", "replace")}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": error.read(BODY_PREVIEW).decode("utf-8", "replace")}
    except (urllib.error.URLError, OSError) as error:
        return {"status": None, "body": f"could not reach the webhook: {error}"}
