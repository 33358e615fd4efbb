"""Session data that looks (and compresses) like a site's, at a chosen serialised size:
a visitor's preferences at 100 B; a user's cart, history, messages and form draft above."""

from __future__ import annotations

import json
import random
from typing import Any

#: The key the load cycle reads and the key the modify cycle sets.
READ_KEY = "lang"
WRITE_KEY = "visits"

_WORDS = (
    "alpine", "blue", "cotton", "shirt", "slim", "fit", "linen", "jacket", "wool", "scarf",
    "leather", "boots", "canvas", "bag", "ceramic", "mug", "oak", "table", "desk", "lamp",
    "walnut", "shelf", "steel", "bottle", "travel", "kit", "running", "shoes", "summer",
    "dress", "rain", "coat", "denim", "jeans", "silk", "tie", "garden", "chair", "kitchen",
    "knife", "cast", "iron", "pan", "organic", "tea", "dark", "roast", "coffee", "notebook",
    "fountain", "pen", "wireless", "mouse", "usb", "cable", "charger",
)
_CITIES = ("Lyon", "Porto", "Leeds", "Graz", "Turku", "Gdansk", "Bilbao", "Aarhus")


def serialised_size(data: dict[str, Any]) -> int:
    """Bytes of ``data`` as Django's ``JSONSerializer`` writes it."""
    return len(json.dumps(data, separators=(",", ":")).encode())


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _cart_item(rng: random.Random) -> dict[str, Any]:
    return {
        "sku": f"{rng.choice('ABCDEFGH')}{rng.randrange(10**7):07d}",
        "name": _words(rng, rng.randint(2, 4)).title(),
        "qty": rng.randint(1, 4),
        "price": f"{rng.randint(3, 400)}.{rng.randrange(100):02d}",
    }


def make_payload(size: int, seed: int = 1) -> dict[str, Any]:
    """A session of about ``size`` serialised bytes (within a few percent above 1 KB)."""
    rng = random.Random(seed * 100_003 + size)
    data: dict[str, Any] = {READ_KEY: "en", "tz": "Europe/Paris", WRITE_KEY: 1}
    if size < 300:
        data.update({"theme": "dark", "consent": "stats", "cart_id": rng.randrange(10**6)})
        return data
    data.update(
        {
            "_auth_user_id": str(rng.randrange(1, 10**6)),
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": f"{rng.getrandbits(256):064x}",
            "currency": "EUR",
            "cart": [],
            "recently_viewed": [],
            "messages": [],
            "checkout_draft": {},
        }
    )
    step = 0
    while serialised_size(data) < size * 0.97:
        kind = step % 4
        if kind == 0:
            data["cart"].append(_cart_item(rng))
        elif kind == 1:
            data["recently_viewed"].extend(rng.randrange(10**6) for _ in range(4))
        elif kind == 2 and len(data["messages"]) < 5:
            data["messages"].append({"level": 25, "text": _words(rng, rng.randint(4, 9))})
        elif kind == 3:
            draft = data["checkout_draft"]
            field = f"field_{len(draft)}"
            draft[field] = (
                rng.choice(_CITIES) if len(draft) % 3 == 0 else _words(rng, rng.randint(2, 7))
            )
        step += 1
    return data
