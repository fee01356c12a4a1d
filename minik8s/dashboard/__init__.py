"""`minik8s dashboard`: a read-only, live web view of the cluster.

model builds plain view objects from informer caches, render writes them as
HTML, sections ties each part of the page to the kinds it shows, server
serves the page and streams re-rendered sections, prometheus fetches the
charts, main wires it together.
"""
