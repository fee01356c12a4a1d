"""The prose of docs/RELIABILITY.md that does not come from a run (report.py renders it)."""
from __future__ import annotations

CLUSTERS = {
    "process": "**process**: the processes of `minik8s.localcluster` on this machine (each in "
               "a cgroup of its own where cgroup v2 allows); the kubelets run pods as "
               "containers of the host's Docker engine (crash-loop back-off 1–8 s); the proxy "
               "programs the host.",
    "compose": "**compose**: `deploy/docker-compose.yml` as a project of the tests' own "
               "(`minik8s-chaos`): one container per process under docker-init with "
               "`restart: unless-stopped`, two node containers each running its own Docker "
               "engine, kubelet, proxy and DNS.",
}

# How each scenario is made; (name, cluster) where the kinds differ.
HOW = {
    "1-scheduler-leader-kill": "SIGKILL the scheduler holding kube-system/kube-scheduler while "
                               "the workload's new pods wait to be bound.",
    "2-controller-manager-kill": "Roll the template of a Deployment and scale it 1 → 3 in one "
                                 "write; SIGKILL the controller-manager leader as soon as the "
                                 "first pod of the new template exists.",
    "3-leaders-paused": "SIGSTOP the scheduler and controller-manager leaders together for 4 s "
                        "(lease 2 s), then SIGCONT. Each must exit and be restarted; the "
                        "apiservers' fencing counters must show no write of theirs accepted "
                        "after their successors took over.",
    ("4-master-partition", "process"): (
        "Cut off a master whose scheduler or controller-manager leads (its etcd member, "
        "apiserver, scheduler and controller-manager; each other too) for 5 s, then heal. "
        "Everything runs on 127.0.0.1: a chain of the cluster's own in iptables' OUTPUT marks "
        "every connection a socket of the master's cgroups touches, or that touches one of its "
        "listening ports, and drops it (`tests/chaos/partition.py`); only its apiserver's "
        "metrics port stays open, for the fencing counters. Failover: every leader it held "
        "taken over and a write accepted through the other apiservers. Then its apiserver must "
        "take writes again, and no write of a deposed leader may have been accepted after its "
        "successor took over."),
    ("4-master-partition", "compose"): (
        "Cut off a master whose scheduler or controller-manager leads: `docker network "
        "disconnect` its four containers from the project's network for 5 s, then connect them "
        "again with the same address and their service name as alias. (Docker gives a "
        "container it starts any free address, one a disconnect freed too, so the tests first "
        "make the master containers' addresses static by connecting them again with theirs.) "
        "Docker restores the published port of the apiserver on the "
        "reconnect: after the heal a write through that port alone must be accepted. The "
        "fencing counters are read inside the apiserver containers. Failover and checks as in "
        "process mode."),
    ("5-apiserver-kill", "process"): (
        "SIGKILL the apiserver the pod observer is watching through, restart it 2 s later. "
        "Failover: a client whose next call goes to the dead apiserver has a write accepted."),
    ("5-apiserver-kill", "compose"): (
        "SIGKILL (from the host) the main process of the apiserver container the pod observer "
        "is watching through; the container exits and Docker restarts it. Failover: a client "
        "whose next call goes to the dead apiserver has a write accepted."),
    ("6-etcd-kill", "process"): (
        "SIGKILL the etcd raft leader (found with the EtcdStatus API), restart it after 1 s; "
        "then SIGKILL two of the three members (the leader among them) for 3 s and restart "
        "both. Writes fail while quorum is lost (expected); failover for that fault is measured "
        "from the restart."),
    ("6-etcd-kill", "compose"): (
        "SIGKILL the main process of the etcd raft leader's container (Docker restarts it); "
        "then `docker kill` two of the three members (the leader among them: a manual stop, "
        "not restarted) for 3 s and `docker start` both. Writes fail while quorum is lost "
        "(expected); failover for that fault is measured from the start."),
    "7-kubelet-kill": "SIGKILL the kubelet of the busiest node; the supervisor restarts it. Its "
                      "pods' containers must keep running (same container ids, same restart "
                      "counts, phase Running).",
    ("8-node-lost", "process"): (
        "SIGSTOP the busiest node's kubelet until the node lifecycle controller marks the node "
        "NotReady (8 s grace) and evicts its pods (10 s), and they run Ready on the other node "
        "(= failover); SIGCONT: the node must be Ready again and the containers of its evicted "
        "pods removed."),
    ("8-node-lost", "compose"): (
        "`docker kill` the busiest node's container (its engine, pods, kubelet and proxy die "
        "with it) until the node is NotReady and its pods run Ready on the other node "
        "(= failover); `docker start` it: the node must be Ready again and the containers of "
        "its evicted pods, left stopped in its engine, removed."),
    "9-containers-killed": "`docker kill` every app container of the scenario's pods "
                           "(found by this cluster's `io.minik8s.cluster` label). Each is "
                           "restarted in place: same pod, restart count + 1, Ready again.",
    "10-monkey": "Random faults from scenarios 1, 2, 3 (one leader), 5, 6 (either fault), 7 "
                 "and 9, one after the other with 0.5–2 s between, for a bounded time, under "
                 "the workload; then the invariants.",
}


# What a violation seen before turned out to be, shown next to it when it occurs again.
KNOWN = {
    "internal error: AioRpcError": (
        "The apiserver answered INTERNAL instead of UNAVAILABLE while etcd lost quorum. "
        "A request that reaches the surviving member before it notices its leader is gone "
        "waits for a ReadIndex until its deadline; etcd then answers gRPC UNKNOWN \"context "
        "deadline exceeded\", which `apiserver/etcd.py` (`_call`, `_RETRYABLE`) neither "
        "retries on another member nor turns into `EtcdUnavailable`, so it escapes as an "
        "internal error (see `internal error in get/update` with that traceback in the "
        "apiserver logs). Clients treat INTERNAL as final, where UNAVAILABLE would have told "
        "them to retry. Found by this suite; `_call` now treats that answer as it treats "
        "DEADLINE_EXCEEDED (next member, then UNAVAILABLE): if this shows again, that "
        "regressed."),
    "is present, expected absent": (
        "The apiserver bug above (fixed): the delayed first copy of a create's Txn, resent to "
        "another member on a timeout, committed again after the object's acknowledged "
        "delete. If this shows again, the write fence in `apiserver/etcd.py` regressed."),
    "across the kubelet's restart": (
        "The kubelet race above (fixed after this run): a sync before the Pod informer's first "
        "list took the pod's containers for those of a deleted pod and removed them."),
}


# What a slow recovery (fault, text in what it waited for) turned out to be.
KNOWN_SLOW = {
    ("SIGKILL a kubelet", ", Running)"): (
        "After a kubelet restart a pod whose readiness probe succeeded at once could stay "
        "Ready=False until the kubelet's 30 s resync: it compared the status it computed with "
        "its informer's copy, which did not have its own last write yet. Fixed "
        "(`kubelet/pods.py` `_reported`): if this shows again, that regressed."),
}

BUGS = [
    "* **Fixed**: with two of three etcd members just killed, the apiserver sometimes "
    "answered INTERNAL (`internal error: AioRpcError`) instead of UNAVAILABLE: etcd's "
    "`UNKNOWN: context deadline exceeded` was not treated like DEADLINE_EXCEEDED in "
    "`apiserver/etcd.py` `_call`. Seen in 3 of 5 runs before the fix, none since.",
    "* **Fixed**: after a kubelet restart, a pod could stay Ready=False for the kubelet's 30 s "
    "resync although its readiness probe succeeded at once (a 31.9 s recovery in scenario 7): "
    "the kubelet compared the new status with its informer's copy, which did not have its own "
    "last write yet, and so skipped writing Ready=True. It now compares with the status it "
    "last wrote while the informer's copy is older (`kubelet/pods.py` `_reported`); "
    "`tests/integration/test_kubelet_recovery.py` wants the pod Ready within 10 s of the "
    "restart.",
    "* **Fixed** (scenario 4): an etcd member back from a partition deposed the raft leader "
    "with the terms it had run up alone (etcd 3.4 runs without pre-vote by default): a "
    "second election right after the heal, in which leaders whose renewals fell exited a "
    "second time (controller-manager-2 restarted twice in one partition: a crash loop by "
    "this suite's count). `minik8s/localcluster.py` now starts etcd with `--pre-vote`, and "
    "`deploy/docker-compose.yml` sets `ETCD_PRE_VOTE` (after this run).",
    "* **Fixed** (scenario 4, apiserver): an acknowledged delete undone, an object created "
    "twice. `apiserver/etcd.py` `_call_members` sent a Txn to the next member when one did "
    "not answer within its 2 s; a request to a member cut off is not lost but waits in the "
    "TCP connection, and is delivered when the partition heals. Seen in both kinds of "
    "cluster; in process mode, read back from etcd's history: a Service create's Txn "
    "(\"absent\" guard; Service and its ClusterIP range key) committed through another member "
    "(revision 7439), the client deleted the Service (acknowledged, 7451), then the first "
    "request got through and committed the very same bytes again (7605): the Service, and "
    "its ClusterIP's allocation, came back. Every Txn now also compares the mod_revision of a "
    "fence key, and a write that got no answer is fenced off (the fence key written through "
    "another member) before it is sent again, so the late copy fails its comparison "
    "(`Etcd.txn`). `tests/integration/test_etcd_resend.py` holds a create in a TCP relay "
    "past its timeout, deletes the key once the resent copy is acknowledged, then sends "
    "the first copy to its member as it would arrive late, and wants it refused (it "
    "applies without the fence).",
    "* **Fixed** (compose, `deploy/docker-compose.yml`): its containers had no fixed "
    "address, and Docker gives a container it starts or restarts any free one. After a "
    "quorum loss (two etcd members stopped with `docker kill`), the member started first "
    "took the other's address, and `docker start` of the other failed with \"Address "
    "already in use\": it stayed down. A deposed leader restarted during a partition "
    "likewise took the address of a container cut off. Every master service now has a "
    "fixed `ipv4_address` in the upper half of the subnet, outside the range Docker "
    "hands out (`scripts/compose-up.sh` chooses them with the subnet).",
    "* **Fixed** (scenario 7, kubelet): a restarted kubelet could remove the "
    "containers of a running pod and start it anew: it started its workers once its Service "
    "informer had listed, and a worker that synced a pod before the Pod list was in found no "
    "pod (`kubelet/pods.py`: `self.pods.get(key)` is None) and took its containers for "
    "stale. Seen once in 5 restarts (the Service list came 36 ms before the Pod list). "
    "`kubelet/kubelet.py` `run` now waits for the Pod informer too.",
    "* **Fixed** (scenario 4; slow, not a violation): an apiserver cut off the network, "
    "rather than down, deposed leaders on the healthy masters too and delayed the takeover "
    "well past the 2 s lease (scenario 4's failover). `minik8s/client.py` failed over only "
    "on a transport failure; a call to an unreachable apiserver ended in DEADLINE_EXCEEDED "
    "(or was cancelled by the elector's renew deadline of 1.5 s), and the client kept "
    "calling that endpoint until the connection itself failed (about 5 s). Now a call the "
    "apiserver did not answer within its deadline moves the client to the next apiserver "
    "(`_went_unanswered`), and the elector bounds each attempt by a grpc deadline of at most "
    "half its renew deadline, so one unanswered renewal leaves time for the next "
    "(`tests/integration/test_leader_election.py::"
    "test_renewal_survives_its_apiserver_going_silent`). Scenario 4's failover p50 / p99 "
    "went from 4.27 s / 7.60 s to 2.26 s / 4.18 s (process) and from 4.27 s / 9.33 s to "
    "4.22 s / 5.77 s (compose), run against run.",
]

DEFINITIONS = [
    "* **failover**: from the fault to the service being back — a new leader's Lease "
    "acquired (leaders), a write accepted again (apiserver, etcd; for lost quorum: from "
    "the restart of the members), every leader a cut-off master held taken over and a write "
    "accepted through the other apiservers (partition), the restarted kubelet ready, the lost "
    "node's pods running elsewhere, the killed containers running Ready again.",
    "* **recovery**: from the fault healing (for SIGKILL of a supervised process or a "
    "container: the kill itself; SIGSTOP: the SIGCONT; a dead apiserver or etcd member, or "
    "a node: its restart; a partition: the reconnection) until every invariant below holds, "
    "including the workload's writes made during the fault rolled out.",
    "* p99 is the nearest-rank percentile: with few samples it is the worst one.",
    "* **stale leader writes refused**: writes carrying a deposed leader's lease token that "
    "etcd refused (`apiserver_fenced_writes_total{result=\"rejected\"}`).",
]

CHECKED = [
    "During every scenario a workload of several clients (each its own ApiClient over "
    "the three apiservers) creates Deployments of the echo image (2–3 replicas, maxSurge "
    "1, maxUnavailable 0, readiness probe), scales them, rolls their template, deletes "
    "some, and creates and deletes Services. Each write a client saw succeed is logged; "
    "a write that fails is retried (absolute values, client-chosen uids) and, if it never "
    "gets an answer, counted as not acknowledged and never as done. A pod observer "
    "watches the namespace throughout, resuming across apiserver faults by "
    "resourceVersion and relisting when it expired. Violations:",
    "",
    "* more live pods of a Deployment than the most replicas it was ever asked for + "
    "maxSurge (duplicates: two controllers acting, expectations lost);",
    "* a pod whose `spec.nodeName` changes once set (bound twice);",
    "* the pod watch silent (no event, no bookmark) for more than 10 s;",
    "* not converged within 60 s of the fault healing: every logged Deployment with its "
    "last acknowledged replicas and template, exactly that many Ready pods of that "
    "template, deleted ones gone with their ReplicaSets and pods, every logged Service "
    "present (and answering on its ClusterIP from a pod of its Deployment, asked from the "
    "host or, in compose, from inside a node) or gone;",
    "* a process not up and ready afterwards, or restarted more often than the faults "
    "explain (one restart per deliberate kill, at most one exit per fault for a "
    "leader-elected process): a crash loop. Restarts are counted by PID (process) or by "
    "Docker's start events (compose);",
    "* a write of a deposed leader accepted after its successor's acquisition;",
    "* a scenario-specific check failing (container ids kept across a kubelet restart, "
    "orphaned containers removed, restart count exactly + 1 after a container kill, a "
    "write refused without quorum, the cut-off apiserver taking writes again).",
]
