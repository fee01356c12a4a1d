"""A steady, bounded workload, and the client-side log of what it was told succeeded.

Several clients, each its own ApiClient over all the apiservers, write in one
namespace: they create Deployments of the echo image (2 or 3 replicas), scale
them, roll their template (a change of one annotation), delete some, and
create and delete a Service in front of them. Each client owns its objects
(nobody else writes them), so the last write a client saw succeed is what the
cluster must show in the end.

A write that raises (UNAVAILABLE while a fault lasts, a timeout, a conflict)
is retried; every write sets absolute values and creates carry a uid chosen
here, so a retry after a lost answer cannot apply anything twice. A write
that still has no answer when its deadline passes is *not acknowledged*: the
object is then in doubt between its last acknowledged state and the state
attempted, either is accepted in the end, and its client leaves it alone
from then on. Unacknowledged writes are counted, never logged as done.

Every replica count is noted in `max_replicas` before it is sent, so the pod
observer's bound (most replicas ever asked for + maxSurge) holds even for a
write whose answer was lost.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from minik8s import errors
from minik8s.client import ApiClient
from minik8s.retry import retry_on_conflict
from tests.integration.kubelet_helpers import echo_deployment, web_service

REV = "chaos.minik8s.io/rev"   # the template annotation a roll changes
MAX_SURGE = 1                  # echo_deployment's maxSurge (maxUnavailable 0)
RETRIED = (errors.Unavailable, errors.Timeout, errors.Conflict)


@dataclass(frozen=True)
class State:
    """What an object must look like: absent, or present (with replicas and template rev)."""

    exists: bool
    replicas: int = 0
    rev: str = ""

    def __str__(self) -> str:
        if not self.exists:
            return "absent"
        return f"replicas={self.replicas} rev={self.rev}" if self.rev else "present"


ABSENT = State(False)


@dataclass
class Tracked:
    kind: str                      # Deployment or Service
    name: str
    owner: str                     # the client that alone writes it
    acked: State = ABSENT          # the state of its last acknowledged write
    in_doubt: list[State] = field(default_factory=list)  # what unanswered writes tried

    @property
    def frozen(self) -> bool:
        return bool(self.in_doubt)

    @property
    def allowed(self) -> list[State]:
        return [self.acked, *self.in_doubt]


@dataclass
class Ack:
    at: float
    client: str
    kind: str
    name: str
    op: str
    state: State


class Workload:
    def __init__(self, servers: list[str], namespace: str, *, clients: int = 2,
                 ops_per_client: int = 3, deployments_per_client: int = 1,
                 pace: tuple[float, float] = (0.3, 1.0), op_deadline: float = 45.0,
                 seed: int | None = None) -> None:
        self.servers = servers
        self.namespace = namespace
        self.clients = clients
        self.ops_per_client = ops_per_client
        self.deployments_per_client = deployments_per_client
        self.pace = pace
        self.op_deadline = op_deadline
        self.seed = random.randrange(1 << 30) if seed is None else seed
        self.objects: dict[tuple[str, str], Tracked] = {}
        self.max_replicas: dict[str, int] = {}
        self.log: list[Ack] = []
        self.unacknowledged = 0
        self.retried: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self._apis: dict[str, ApiClient] = {}
        self._round = 0
        self._names = 0
        self._tasks: list[asyncio.Task] = []
        self._stop = asyncio.Event()

    # ------------------------------------------------------------ clients

    def api(self, client: str) -> ApiClient:
        if client not in self._apis:
            self._apis[client] = ApiClient(self.servers)
        return self._apis[client]

    async def close(self) -> None:
        await self.stop()
        for api in self._apis.values():
            await api.close()

    def deployments(self) -> list[Tracked]:
        return [o for o in self.objects.values() if o.kind == "Deployment"]

    def services(self) -> list[Tracked]:
        return [o for o in self.objects.values() if o.kind == "Service"]

    def _track(self, kind: str, name: str, owner: str) -> Tracked:
        return self.objects.setdefault((kind, name), Tracked(kind, name, owner))

    # ------------------------------------------------------------ one write

    async def _write(self, tracked: Tracked, op: str, client: str, target: State,
                     attempt: Callable[[int], Awaitable[object]]) -> bool:
        """Run attempt(n) until it succeeds or the deadline passes; log it if acknowledged."""
        if tracked.frozen:
            return False
        deadline = time.monotonic() + self.op_deadline
        delay = 0.1
        n = 0
        while True:
            try:
                await attempt(n)
                break
            except RETRIED as err:
                self.retried[type(err).__name__] += 1
            except errors.ApiError as err:  # anything else is a finding of its own
                self.unexpected.append(f"{client} {op} {tracked.kind}/{tracked.name}: "
                                       f"{type(err).__name__}: {err.message}")
                tracked.in_doubt.append(target)
                self.unacknowledged += 1
                return False
            n += 1
            if time.monotonic() + delay > deadline:
                tracked.in_doubt.append(target)
                self.unacknowledged += 1
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        tracked.acked = target
        self.log.append(Ack(time.monotonic(), client, tracked.kind, tracked.name, op, target))
        return True

    # ------------------------------------------------------------ operations

    def new_name(self, client: str) -> str:
        self._names += 1
        return f"{client}-r{self._round}-{self._names}"

    async def create_deployment(self, name: str, replicas: int, client: str = "main") -> bool:
        tracked = self._track("Deployment", name, client)
        dep = echo_deployment(name, self.namespace, replicas)
        dep.metadata.uid = str(uuid.uuid4())   # so a retry is recognised as ours
        dep.spec.template.metadata.annotations[REV] = "0"
        self.max_replicas[name] = max(self.max_replicas.get(name, 0), replicas)
        api = self.api(client)
        return await self._write(tracked, "create", client, State(True, replicas, "0"),
                                 lambda _n: api.create(dep))

    async def _change(self, tracked: Tracked, op: str, client: str, replicas: int,
                      rev: str) -> bool:
        api = self.api(client)
        self.max_replicas[tracked.name] = max(self.max_replicas.get(tracked.name, 0), replicas)

        async def set_spec() -> None:
            dep = await api.get("Deployment", tracked.name, self.namespace)
            dep.spec.replicas = replicas
            dep.spec.template.metadata.annotations[REV] = rev
            await api.update(dep)

        return await self._write(tracked, op, client, State(True, replicas, rev),
                                 lambda _n: retry_on_conflict(set_spec, attempts=10))

    async def scale(self, name: str, replicas: int, client: str = "main") -> bool:
        tracked = self.objects[("Deployment", name)]
        return await self._change(tracked, f"scale to {replicas}", client, replicas,
                                  tracked.acked.rev)

    async def roll(self, name: str, client: str = "main", replicas: int | None = None) -> bool:
        """Change the template (and, if given, the replicas in the same write)."""
        tracked = self.objects[("Deployment", name)]
        rev = str(int(tracked.acked.rev) + 1)
        return await self._change(tracked, f"roll to rev {rev}", client,
                                  tracked.acked.replicas if replicas is None else replicas, rev)

    async def _delete(self, tracked: Tracked, client: str) -> bool:
        """Read it first: nobody else deletes it, so it must be there until a delete of
        ours is sent (NotFound then is a finding). Once one is sent, NotFound means a
        delete whose answer was lost did it: an earlier attempt, or the ApiClient's own
        resend on another apiserver after a transport failure."""
        api = self.api(client)
        seen = False

        async def delete(_n: int) -> None:
            nonlocal seen
            if not seen:
                await api.get(tracked.kind, tracked.name, self.namespace)
                seen = True
            with contextlib.suppress(errors.NotFound):
                await api.delete(tracked.kind, tracked.name, self.namespace)
        return await self._write(tracked, "delete", client, ABSENT, delete)

    async def delete_deployment(self, name: str, client: str = "main") -> bool:
        return await self._delete(self.objects[("Deployment", name)], client)

    async def create_service(self, name: str, client: str = "main") -> bool:
        tracked = self._track("Service", name, client)
        svc = web_service(name, self.namespace)
        svc.metadata.uid = str(uuid.uuid4())
        api = self.api(client)
        return await self._write(tracked, "create", client, State(True),
                                 lambda _n: api.create(svc))

    async def delete_service(self, name: str, client: str = "main") -> bool:
        return await self._delete(self.objects[("Service", name)], client)

    # ------------------------------------------------------------ the random clients

    async def _one_op(self, client: str, rng: random.Random) -> None:
        mine = [o for o in self.objects.values() if o.owner == client and not o.frozen]
        deps = [o for o in mine if o.kind == "Deployment" and o.acked.exists]
        svcs = {o.name: o for o in mine if o.kind == "Service"}
        choices: list[str] = []
        if len(deps) < self.deployments_per_client:
            choices += ["create"] * 3
        if deps:
            choices += ["scale", "roll", "roll"]
            if len(deps) > 1 or len(deps) == self.deployments_per_client:
                choices.append("delete")
            if any(d.name not in svcs or not svcs[d.name].acked.exists for d in deps):
                choices.append("service")
        if any(s.acked.exists for s in svcs.values()):
            choices.append("unservice")
        if not choices:
            return
        op = rng.choice(choices)
        if op == "create":
            await self.create_deployment(self.new_name(client), rng.choice((2, 3)), client)
        elif op == "scale":
            dep = rng.choice(deps)
            others = [r for r in (1, 2, 3) if r != dep.acked.replicas]
            await self.scale(dep.name, rng.choice(others), client)
        elif op == "roll":
            await self.roll(rng.choice(deps).name, client)
        elif op == "delete":
            dep = rng.choice(deps)
            await self.delete_deployment(dep.name, client)
            svc = svcs.get(dep.name)
            if svc is not None and svc.acked.exists:
                await self.delete_service(dep.name, client)
        elif op == "service":
            dep = rng.choice([d for d in deps
                              if d.name not in svcs or not svcs[d.name].acked.exists])
            await self.create_service(dep.name, client)
        elif op == "unservice":
            svc = rng.choice([s for s in svcs.values() if s.acked.exists])
            await self.delete_service(svc.name, client)

    async def _client(self, client: str, rng: random.Random, end: float) -> None:
        for _ in range(self.ops_per_client):
            if self._stop.is_set() or time.monotonic() > end:
                return
            await self._one_op(client, rng)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), rng.uniform(*self.pace))

    def start(self, seconds: float, pace: tuple[float, float] | None = None) -> None:
        """Start a round: each client makes up to ops_per_client writes within seconds,
        pausing a random time within pace between two."""
        self._round += 1
        if pace is not None:
            self.pace = pace
        self._stop.clear()
        end = time.monotonic() + seconds
        self._tasks = [
            asyncio.create_task(self._client(f"c{k}", random.Random(
                f"{self.seed}-{self._round}-{k}"), end), name=f"workload-c{k}")
            for k in range(self.clients)]

    async def stop(self) -> None:
        """End the round: no new writes; wait for those in flight (each has its deadline)."""
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await task   # a bug in the workload itself fails the test here

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)
