import pytest

from myapp.errors import InvalidJob
from myapp.jobs.submit import validate


def test_valid_request_gives_clean_params():
    kind, params = validate({"kind": "process_run", "params": {"steps": 3, "step_seconds": 0}})
    assert kind == "process_run"
    assert params == {"steps": 3, "step_seconds": 0.0}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "JSON object"),
        ({"kind": "nope"}, "unknown kind 'nope'"),
        ({"kind": 3}, "unknown kind 3"),
        ({"kind": "process_run", "params": []}, "'params' must be a JSON object"),
        ({"kind": "process_run", "params": {}, "extra": 1}, "unknown field(s): extra"),
        ({"kind": "process_run", "params": {"steps": 0, "step_seconds": 0}}, "params.steps"),
        ({"kind": "process_run", "params": {"steps": 10_001, "step_seconds": 0}}, "params.steps"),
        ({"kind": "process_run", "params": {"steps": "5", "step_seconds": 0}}, "params.steps"),
        ({"kind": "process_run", "params": {"steps": True, "step_seconds": 0}}, "params.steps"),
        ({"kind": "process_run", "params": {"steps": 1, "step_seconds": 10.5}}, "step_seconds"),
        ({"kind": "process_run", "params": {"steps": 1}}, "params.step_seconds: Field required"),
        ({"kind": "process_run", "params": {"steps": 1, "step_seconds": 0, "x": 1}}, "params.x"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(payload, message):
    with pytest.raises(InvalidJob) as info:
        validate(payload)
    assert message in str(info.value)


def test_a_huge_bad_request_gets_a_short_answer():
    rows = [{"name": "n", "email": "e", "bad": 1} for _ in range(1000)]
    with pytest.raises(InvalidJob) as info:
        validate({"kind": "import_contacts", "params": {"rows": rows}})
    assert str(info.value).endswith("and 990 more")
    assert len(str(info.value)) < 2000
