"""The web side: the JSON API, the page, the stream, sign-in, and rq-dashboard at ``/rq``.

Loaded by gunicorn (``app:app``) and by ``flask`` commands; never by a worker's
job. The factory (:func:`myapp.create_app`) registers each module here.
"""
