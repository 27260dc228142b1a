"""The web front end: the local page, Easel's JSON API and the AUTOMATIC1111-compatible API.

One ``aiohttp.web`` server in the same process and event loop as the bots, on the one shared
worker (``bot.web.server.start_web``). Every handler reaches the engine through
``app.service`` only. Modules:

* ``server``: the application factory, error shaping middleware, start/stop;
* ``keys``: what the application stores (the App, per-server state);
* ``auth``: who is asking (HTTP basic, bearer tokens; open on loopback);
* ``errors``: the web layer's errors and each API's error shape;
* ``common``: request bodies, uploaded images, origins (who sees what), job JSON, waiting;
* ``api`` and ``events``: Easel's own JSON API under ``/api`` (jobs, images, admin; SSE);
* ``a1111``, ``a1111_info``, ``a1111_models``, ``a1111_options``: ``/sdapi/v1``, following
  A1111's shapes;
* ``pages``: the browser page and its static files.
"""
