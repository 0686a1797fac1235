"""``generate_profile``: make a character in three stages, each its own RQ job.

A sequence (see :mod:`myapp.pipeline.aggregate`): ``traits``, then ``background`` (which
needs the traits), then ``summary`` (which needs both, and stores the profile
in the database). Each stage starts only once the one before finished; when one
fails, those after it never start. The generator is a simulation: it picks
from word lists with a seeded random generator, ``stage_seconds`` per stage.
``fail_stage`` makes that stage fail, to see what a failed sequence looks like.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rq import get_current_job

from myapp import progress
from myapp.db import db
from myapp.errors import PermanentError
from myapp.jobs.kind import Piece
from myapp.models import Profile
from myapp.pipeline.stages import earlier_results

#: The stages, in order, with their share of the parent's bar.
WEIGHTS = {"traits": 1, "background": 2, "summary": 1}
#: Seconds a simulated word takes to generate.
WORD_SECONDS = 0.004
STEPS = 10

_NAMES = ["Ada", "Bram", "Cato", "Dara", "Edda", "Fenn", "Gia", "Hale", "Ines", "Joss"]
_TRAITS = {
    "calling": ["cartographer", "lighthouse keeper", "beekeeper", "clockmaker", "ferryman"],
    "virtue": ["patient", "brave", "generous", "curious", "honest"],
    "flaw": ["stubborn", "forgetful", "proud", "restless", "secretive"],
    "home": ["a river delta", "a mountain pass", "an island town", "a walled city", "the steppe"],
}


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=80)
    seed: int | None = Field(default=None, ge=0, le=2**31)
    stage_seconds: float = Field(default=1.0, ge=0, le=30)
    fail_stage: Literal["traits", "background", "summary"] | None = None


class GenerationFailed(PermanentError):
    """The (simulated) generator gave up on this stage."""


def pieces(params: dict[str, Any]) -> list[Piece]:
    # Fix the seed now, so a stage that runs again makes the same character.
    seed = params["seed"] if params["seed"] is not None else random.randrange(2**31)
    params = {**params, "seed": seed}
    kinds = ((f"generate_profile.{stage}", stage, weight) for stage, weight in WEIGHTS.items())
    return [Piece(kind, params, stage, weight) for kind, stage, weight in kinds]


def traits(name: str | None, seed: int, stage_seconds: float, fail_stage: str | None) -> dict:
    rng = _work("traits", seed, stage_seconds, fail_stage)
    return {
        "name": name or rng.choice(_NAMES),
        "traits": {trait: rng.choice(options) for trait, options in _TRAITS.items()},
    }


def background(name: str | None, seed: int, stage_seconds: float, fail_stage: str | None) -> dict:
    rng = _work("background", seed, stage_seconds, fail_stage)
    made = earlier_results()["traits"]
    t = made["traits"]
    years = rng.randrange(3, 30)
    return {
        "background": _generate(
            f"{made['name']} grew up in {t['home']} and has worked as a {t['calling']} "
            f"for {years} years: {t['virtue']} with strangers, {t['flaw']} with friends."
        )
    }


def summary(name: str | None, seed: int, stage_seconds: float, fail_stage: str | None) -> dict:
    _work("summary", seed, stage_seconds, fail_stage)
    earlier = earlier_results()
    made, story = earlier["traits"], earlier["background"]["background"]
    t = made["traits"]
    text = _generate(
        f"{made['name']}, a {t['virtue']} but {t['flaw']} {t['calling']} from {t['home']}."
    )
    job = get_current_job()
    parent_id = job.meta["parent_id"]
    profile = db.session.scalar(db.select(Profile).filter_by(job_id=parent_id))
    if profile is None:  # a stage run again must not store the profile twice
        profile = Profile(user_id=job.meta["user_id"], job_id=parent_id)
        db.session.add(profile)
    profile.name, profile.traits, profile.background, profile.summary = (
        made["name"],
        t,
        story,
        text,
    )
    db.session.commit()
    return {"profile_id": profile.id, "summary": text, "link": f"/profiles/{profile.id}"}


def _work(stage: str, seed: int, seconds: float, fail_stage: str | None) -> random.Random:
    """Simulate a stage's work, reporting progress; fail where asked to."""
    for step in range(1, STEPS + 1):
        time.sleep(seconds / STEPS)
        if stage == fail_stage and step > STEPS // 2:
            raise GenerationFailed(f"the generator gave up on the {stage} (simulated)")
        progress.update(step, STEPS, f"writing the {stage}")
    return random.Random(f"{seed}:{stage}")


def _generate(text: str) -> str:
    """Write ``text`` to the job's output word by word, as a language model streams
    its answer (simulated: a few ms a word)."""
    for word in text.split(" "):
        progress.output(word + " ")
        time.sleep(WORD_SECONDS)
    progress.output("\n")
    return text


STAGES = {"traits": traits, "background": background, "summary": summary}
