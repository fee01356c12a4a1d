"""HTML of the dashboard: the page, and each live section on its own.

Everything is built with el(), which escapes every child and attribute value
that is not already Html: a name, label or message from the cluster can never
become markup. A section renders as one <section id=...> element, so the
browser can swap a new rendering in for the old one whole.
"""
from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

from minik8s.dashboard import model

STYLESHEET = "/static/dashboard.css"
SCRIPT = "/static/dashboard.js"


class Html(str):
    """Markup that is safe as it is; any other str is escaped when placed in a page."""


def el(tag: str, *children: object, **attrs: object) -> Html:
    """<tag attrs>children</tag>; attrs named with _ for - (data_id) and class_ for class.

    An attribute that is None or False is left out, True is written bare.
    """
    attr_text = "".join(_attr(name, value) for name, value in attrs.items())
    return Html(f"<{tag}{attr_text}>{join(children)}</{tag}>")


def join(children: Iterable[object]) -> Html:
    return Html("".join(_child(c) for c in children))


def _child(child: object) -> str:
    if isinstance(child, Html):
        return child
    if child is None:
        return ""
    if isinstance(child, list | tuple):
        return join(child)
    return html.escape(str(child))


def _attr(name: str, value: object) -> str:
    if value is None or value is False:
        return ""
    name = name.rstrip("_").replace("_", "-")
    return f" {name}" if value is True else f' {name}="{html.escape(str(value))}"'


def badge(text: str, health: str, title: str | None = None) -> Html:
    return el("span", text, class_=f"badge {health}", title=title or None)


def table(headers: Sequence[str], rows: Iterable[Html], empty: str) -> Html:
    body = list(rows)
    if not body:
        return el("p", empty, class_="empty")
    return el("table", el("thead", el("tr", [el("th", h) for h in headers])),
              el("tbody", body))


def section(section_id: str, title: str, summary: str, *content: object) -> Html:
    return el("section", el("h2", title, " ", el("small", summary)), *content, id=section_id)


# ---------------------------------------------------------------- the page

def page(sections: Mapping[str, Html], prometheus: str) -> Html:
    """The whole page: the charts panel, then every section in the order given."""
    head = el("head", Html('<meta charset="utf-8">'),
              Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
              el("title", "minik8s dashboard"),
              Html(f'<link rel="stylesheet" href="{STYLESHEET}">'),
              el("script", src=SCRIPT, defer=True))
    header = el("header", el("h1", "minik8s"),
                el("span", "connecting", id="live", class_="badge warn",
                   title="live updates from the cluster's watches"))
    body = el("body", header, el("main", charts(prometheus), join(sections.values())))
    return Html(f"<!doctype html>\n{el('html', head, body, lang='en')}\n")


def charts(prometheus: str) -> Html:
    """The charts panel: its script fills it from /api/charts when Prometheus is set."""
    if not prometheus:
        return section("charts", "Metrics", "", el(
            "p", "Prometheus not configured: start the dashboard with --prometheus URL "
                 "to see charts.", class_="empty"))
    return section("charts", "Metrics", f"from {prometheus}",
                   el("div", class_="charts", data_source="/api/charts"))


# ---------------------------------------------------------------- sections

def nodes(views: Sequence[model.NodeView]) -> Html:
    ready = sum(1 for v in views if v.ready)
    rows = [el("tr", el("td", v.name, class_="name"),
               el("td", badge(v.status, "ok" if v.ready and not v.unschedulable
                              else "bad" if not v.ready else "warn")),
               el("td", [_condition(c) for c in v.conditions]),
               el("td", [el("div", x) for x in v.taints] or "none"),
               el("td", _usage(v.cpu)), el("td", _usage(v.memory)), el("td", _usage(v.pods)))
            for v in views]
    return section("nodes", "Nodes", f"{ready} of {len(views)} ready",
                   table(("Node", "Status", "Conditions", "Taints", "CPU requested",
                          "Memory requested", "Pods"), rows, "No nodes."))


def _condition(c: model.ConditionView) -> Html:
    detail = ": ".join(x for x in (c.reason, c.message) if x)
    return badge(f"{c.type}={c.status}", "ok" if c.healthy else "bad", detail)


def _usage(u: model.Usage) -> Html:
    return el("div", el("meter", min=0, max=u.total or 1, value=u.used,
                        high=0.9 * (u.total or 1), optimum=0),
              " ", u.text, class_="usage", title=f"{u.fraction:.0%}")


def workloads(views: Sequence[model.WorkloadView]) -> Html:
    done = sum(1 for v in views if v.state == "complete")
    return section("workloads", "Workloads", f"{done} of {len(views)} rolled out",
                   [_workload(v) for v in views] or el("p", "No workloads.", class_="empty"))


STATE_HEALTH = {"complete": "ok", "progressing": "warn", "paused": "warn", "failed": "bad",
                "unknown": "warn"}


def _workload(v: model.WorkloadView) -> Html:
    counts = (f"desired {v.desired} · updated {v.updated} · ready {v.ready} · "
              f"available {v.available}")
    progressing = v.progressing
    condition = (None if progressing is None else el(
        "p", "Progressing: ", badge(progressing.status, "ok" if progressing.healthy else "bad"),
        " ", progressing.reason, " ", progressing.message, class_="condition"))
    pods = [el("tr", el("td", p.name, class_="name"), el("td", badge(p.status, p.health)),
               el("td", p.ready), el("td", p.node or "—"), el("td", p.restarts),
               el("td", p.ip or "—")) for p in v.pods]
    return el("article", el("h3", el("span", v.kind, class_="kind"), " ",
                            f"{v.namespace}/{v.name}", " ", badge(v.state, STATE_HEALTH[v.state])),
              el("p", counts, class_="counts"), el("p", v.message, class_="message"), condition,
              table(("Pod", "Status", "Ready", "Node", "Restarts", "IP"), pods, "No pods."),
              class_="workload")


def services(views: Sequence[model.ServiceView]) -> Html:
    rows = [el("tr", el("td", v.namespace), el("td", v.name, class_="name"), el("td", v.type),
               el("td", v.cluster_ip), el("td", v.ports),
               el("td", [el("div", a) for a in v.endpoints],
                    [el("div", a, " (not ready)", class_="not-ready") for a in v.not_ready]
                    or (None if v.endpoints else "none")))
            for v in views]
    return section("services", "Services", f"{len(views)}",
                   table(("Namespace", "Service", "Type", "Cluster IP", "Ports", "Endpoints"),
                         rows, "No services."))


def leaders(views: Sequence[model.LeaderView]) -> Html:
    rows = [el("tr", el("td", v.component),
               el("td", badge(v.holder or "none", "bad" if v.expired else "ok",
                              "lease expired" if v.expired else "holds the lease")),
               el("td", f"{v.renewed} ago" if v.holder else "—"), el("td", v.transitions))
            for v in views]
    led = sum(1 for v in views if not v.expired)
    return section("leaders", "Leaders", f"{led} of {len(views)} components led",
                   table(("Component", "Leader", "Renewed", "Transitions"), rows, "No leases."))


def events(views: Sequence[model.EventView]) -> Html:
    rows = [el("tr", el("td", v.last_seen), el("td", v.type), el("td", v.reason),
               el("td", v.namespace), el("td", v.object),
               el("td", v.message, class_="message"), el("td", v.count),
               class_="warning" if v.type == "Warning" else None)
            for v in views]
    return section("events", "Recent events", f"last {len(views)}",
                   table(("Last seen", "Type", "Reason", "Namespace", "Object", "Message",
                          "Count"), rows,
                         "No events."))
