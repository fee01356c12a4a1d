"""Live sections: the current HTML of each, re-rendered when what it shows changes.

A change to a kind marks the sections drawn from it stale. The renderer
takes all stale sections at once, then rests ``interval`` seconds, so a burst
of watch events (a Deployment scaled to 50) costs one rendering per section
per interval, however many events arrive. Every ``refresh`` seconds all
sections are rendered again, since ages move on without any event. Only a
rendering that differs from the last goes out. Each subscriber (one per open
page) keeps only the newest HTML of each section it has not yet sent, so a
slow browser holds at most one pending update per section.
"""
from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence

from minik8s.dashboard.metrics import SECTION_UPDATES
from minik8s.dashboard.render import Html
from minik8s.dashboard.sections import Objects, Section


class Subscriber:
    """The updates one open page has yet to receive."""

    def __init__(self, pending: dict[str, Html]) -> None:
        self._pending = pending
        self._ready = asyncio.Event()
        self._closed = False
        if pending:
            self._ready.set()

    def offer(self, updates: dict[str, Html]) -> None:
        self._pending.update(updates)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def next(self, timeout: float) -> dict[str, Html] | None:
        """The sections changed since the last call ({} if none within timeout); None once
        closed."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return {}
        if self._closed:
            return None
        self._ready.clear()
        pending, self._pending = self._pending, {}
        return pending


class LiveSections:
    def __init__(self, sections: Sequence[Section], objects: Objects, *,
                 interval: float = 0.25, refresh: float = 5.0) -> None:
        self._sections = {s.id: s for s in sections}
        self._objects = objects
        self._interval = interval
        self._refresh = refresh
        self._html: dict[str, Html] = {}
        self._stale = set(self._sections)
        self._wake = asyncio.Event()
        self._subscribers: set[Subscriber] = set()

    def changed(self, kind: str) -> None:
        """Mark the sections that show ``kind`` stale (an informer handler: quick)."""
        self._stale.update(s.id for s in self._sections.values() if kind in s.kinds)
        self._wake.set()

    def current(self) -> dict[str, Html]:
        """Every section as it is now, in page order."""
        self.render_stale()
        return {id_: self._html[id_] for id_ in self._sections}

    def render_stale(self) -> None:
        """Render the stale sections; send those that changed to every subscriber."""
        now = datetime.datetime.now(datetime.UTC)
        stale, self._stale = self._stale, set()
        changed = {}
        for id_ in stale:
            html = self._sections[id_].render(self._objects, now)
            if html != self._html.get(id_):
                self._html[id_] = changed[id_] = html
                SECTION_UPDATES.labels(id_).inc()
        if changed:
            for subscriber in self._subscribers:
                subscriber.offer(changed)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._refresh)
            except TimeoutError:
                self._stale.update(self._sections)
            self._wake.clear()
            self.render_stale()
            await asyncio.sleep(self._interval)

    def subscribe(self) -> Subscriber:
        """A new page's subscription; it starts with every section, so that a page that
        reconnects catches up whatever it missed."""
        subscriber = Subscriber(dict(self.current()))
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every subscription (shutting down)."""
        for subscriber in self._subscribers:
            subscriber.close()
