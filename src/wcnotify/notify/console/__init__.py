"""The web console: a static page (``static/``) served at ``/console`` and the queries behind its panels.

The page is plain HTML, CSS and one vanilla JS file, shipped inside the package: no build step, no CDN, so a
self-hosted server on a closed network serves it whole. It talks only to this server's JSON API with the
credentials the user typed (kept in the tab's ``sessionStorage``, sent as ``Authorization: Bearer``); the
routes are in :mod:`wcnotify.notify.api.console`.

* :mod:`.queries`: the few questions the existing dapp API cannot answer (recent notifications with their
  delivery counts, subscriber counts per day or hour, the webhook outbox);
* :mod:`.didcheck`: whether the app's own site publishes the did.json wallets will look up.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

# the only files served under /console/: a fixed table, so no request path ever reaches the file system
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


@cache
def asset(name: str) -> bytes:
    """The bytes of one of :data:`ASSETS` (read once per process: they never change while it runs)."""
    if name not in ASSETS:
        raise KeyError(name)
    return resources.files(__name__).joinpath("static", name).read_bytes()
