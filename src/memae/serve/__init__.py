"""``memae serve``: trained detectors behind HTTP — JSON and file uploads in, scores out.

:func:`memae.serve.app.create_app` builds the ASGI application from loaded detectors and a
:class:`memae.serve.config.ServeConfig`; :mod:`memae.serve.cli` is the command line around it.
Needs the ``serve`` extra (``pip install 'memae[serve]'``).
"""
