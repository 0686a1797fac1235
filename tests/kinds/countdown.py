"""``countdown``: a kind that only the tests have, made by the recipe in
docs/architecture.md ("Adding a job kind"): progress, steps and a retry policy.

It counts to ``count`` in one resumable step. Its first attempt fails once it
reaches ``fail_once_at`` (as a flaky third party would), and the kind's retry
policy runs it again, from the step's cursor rather than from the start.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from myapp import progress
from myapp.steps import job_steps


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=1000)
    fail_once_at: int | None = Field(default=None, ge=2)
    step_seconds: float = Field(default=0.05, ge=0, le=1)


class Flaky(Exception):
    """A failure that passes: the retry policy mends it."""


def run(count: int, fail_once_at: int | None = None, step_seconds: float = 0.05) -> dict:
    with job_steps() as steps, steps.step("count", total=count) as step:
        resumed_at = step.cursor
        progress.update(step.cursor, count, f"counting from {step.cursor}")
        for done in range(step.cursor + 1, count + 1):
            time.sleep(step_seconds)
            if done == fail_once_at and resumed_at == 0:
                raise Flaky(f"the counter went away at {done}")
            step.advance(done, f"{done} of {count}")
    return {"counted": count, "resumed_at": resumed_at}
