"""The web side: the JSON API, the page, the stream, sign-in, and rq-dashboard at ``/rq``.

The factory (:func:`myapp.create_app`) registers each module here, in every
process that builds the app (a worker too, which serves no request); importing a
job's module never loads it.
"""
