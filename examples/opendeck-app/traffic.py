"""Drive the sample backend with a mix of requests that lights up every OpenDeck dashboard panel:
health checks, reads, writes, logins, study sessions, documents (some unsupported, so failing),
slow calls and server errors."""

from __future__ import annotations

import argparse
import random
import time

import httpx

TOPICS = ("languages", "science", "history")


def one_round(client: httpx.Client, round_number: int) -> None:
    client.get("/health")
    client.get("/api/decks")
    created = client.post("/api/decks", json={"title": f"deck {round_number}", "topic": random.choice(TOPICS)})
    created.raise_for_status()
    client.post("/api/auth/register", json={"email": f"user{round_number}@example.com"})
    client.post(
        "/api/auth/login",
        json={"email": f"user{round_number}@example.com"},
        headers={"Authorization": "Bearer sample-token", "Cookie": "session=sample"},
    )
    client.post("/api/study-sessions", params={"deck_id": round_number, "cards": random.randint(1, 10)})
    client.post("/api/documents", json={"file_type": random.choice(("pdf", "docx", "txt")), "pages": random.randint(1, 5)})
    if round_number % 3 == 0:
        client.post("/api/documents", json={"file_type": "exe"})
        client.get("/api/slow", params={"ms": random.randint(200, 900)})
    if round_number % 6 == 0:
        # About 2% of requests: visible on the dashboards, under the 5xx alert's 5%.
        client.get("/api/error")
    if round_number % 5 == 0:
        client.delete(f"/api/decks/{round_number}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between rounds")
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    rounds = 0
    with httpx.Client(base_url=args.url, timeout=10) as client:
        while time.monotonic() < deadline:
            rounds += 1
            one_round(client, rounds)
            time.sleep(args.pause)
    print(f"{rounds} rounds sent to {args.url}")


if __name__ == "__main__":
    main()
