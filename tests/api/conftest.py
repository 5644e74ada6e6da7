from __future__ import annotations

import pytest

from tests.api.world import session_world


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    return session_world(tmp_path_factory)


@pytest.fixture(scope="session")
def app(world):
    from allpayer.api.app import create_app

    return create_app(world.db, world.store_url)


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def as_role(world, client):
    def get(role: str, url: str, **kw):
        return client.get(url, headers={"X-API-Key": world.keys[role]}, **kw)

    return get
