"""The registry of job kinds: what users may start, with the parameters each accepts.

A kind is a job function (the work and :func:`myapp.progress.update` calls,
nothing else), a strict pydantic model of its parameters, and a timeout. Adding
one is a module in this package and a line in :data:`KINDS` (docs/architecture.md
walks through it). Starting, canceling and retrying jobs live beside the kinds:
:mod:`myapp.jobs.submit`, :mod:`myapp.jobs.control`.
"""

from __future__ import annotations

from rq import Retry

from myapp.jobs import generate_profile, import_contacts, process_run, publish_album
from myapp.jobs.kind import Kind

KINDS: dict[str, Kind] = {
    "process_run": Kind(
        process_run.run, process_run.Params, timeout=3600, title="Simulated process"
    ),
    "import_contacts": Kind(
        import_contacts.run,
        import_contacts.Params,
        timeout=1800,
        title="Contacts import",
        retry=Retry(max=3, interval=[1, 5, 15]),
        upload="rows",
    ),
    "publish_album": Kind(
        None,
        publish_album.Params,
        timeout=3600,
        title="Album upload",
        mode="batch",
        pieces=publish_album.pieces,
    ),
    "publish_album.upload": Kind(
        publish_album.upload,
        publish_album.UploadParams,
        timeout=600,
        title="Photo upload",
        retry=Retry(max=publish_album.RETRIES, interval=publish_album.RETRY_INTERVALS),
        internal=True,
    ),
    "generate_profile": Kind(
        None,
        generate_profile.Params,
        timeout=3600,
        title="Profile generation",
        mode="sequence",
        pieces=generate_profile.pieces,
    ),
    **{
        f"generate_profile.{stage}": Kind(
            func,
            generate_profile.Params,
            timeout=600,
            title="Profile stage",
            retry=Retry(max=2, interval=1),
            internal=True,
        )
        for stage, func in generate_profile.STAGES.items()
    },
}
