"""A misbehaving client, run as its own process by test_flood.py.

    python -m tests.integration.flooder SERVER TOKEN_SERVER COUNT CONCURRENCY

Sends COUNT bad requests as fast as CONCURRENCY calls in flight allow, half
with a bearer token the apiserver does not know (UNAUTHENTICATED), half as a
user with no role listing pods (PERMISSION_DENIED, with MINIK8S_CONFIG naming
that user's certificate). Prints "ready" once started (so the test's
measurement leaves out this interpreter's start), then the count of each
status code as JSON.
"""
from __future__ import annotations

import asyncio
import collections
import json
import sys

from minik8s import config, errors
from minik8s.client import ApiClient


async def _flood(client: ApiClient, count: int, concurrency: int,
                 codes: collections.Counter[str]) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            try:
                await client.list("Pod", "default")
                codes["OK"] += 1
            except errors.ApiError as err:
                codes[err.code.name] += 1
    await asyncio.gather(*(one() for _ in range(count)))


async def main(server: str, token_server: str, count: int, concurrency: int) -> None:
    creds = config.credentials()
    anonymous = config.Credentials(ca=creds.ca, token="not-a-token-of-this-cluster")
    codes: collections.Counter[str] = collections.Counter()
    async with ApiClient([server], credentials=creds, retry_deadline=0) as denied, \
            ApiClient([token_server], credentials=anonymous, retry_deadline=0) as unknown:
        print("ready", flush=True)
        await asyncio.gather(_flood(denied, count // 2, concurrency // 2, codes),
                             _flood(unknown, count - count // 2, concurrency // 2, codes))
    print(json.dumps(codes))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
