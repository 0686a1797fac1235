def test_healthz_answers_without_services(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    assert app.test_client().get("/healthz").json == {"status": "ok"}


def test_ready_with_redis_database_and_a_worker(client, worker):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["workers"] >= 1


def test_not_ready_when_redis_is_down(make_app):
    response = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["redis"] is False
    assert response.json["database"] is True
