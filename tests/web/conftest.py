from tests.api.conftest import app, as_role, client, world  # noqa: F401  (the same session world)
