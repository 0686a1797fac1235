"""The pipeline: where a job's state becomes an event, a record and a count.

Job bodies call :mod:`myapp.progress` (and :mod:`myapp.steps`); the worker and
the web call :mod:`myapp.pipeline.lifecycle`. From there a state goes to the
database record, to the user's event log (:mod:`myapp.pipeline.event_log`), to
a parent's aggregate when it is a piece (:mod:`myapp.pipeline.aggregate`,
:mod:`myapp.pipeline.parent`) and to the counters (:mod:`myapp.pipeline.counters`).
docs/architecture.md draws the route. Nothing here imports the web, the worker or
the job kinds.
"""
