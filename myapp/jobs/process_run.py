"""``process_run``: a simulated long task of ``steps`` steps."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from myapp import progress


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(ge=1, le=10_000)
    step_seconds: float = Field(ge=0, le=10)


def run(steps: int, step_seconds: float) -> dict[str, int]:
    for step in range(1, steps + 1):
        time.sleep(step_seconds)
        progress.update(step, steps, f"step {step} of {steps}")
        progress.output(f"step {step} of {steps} done\n")
    return {"steps": steps}
