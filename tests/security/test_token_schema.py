"""The OpenAPI description of the token authentication (drf-spectacular's extension in security/schema.py)."""

from drf_spectacular.generators import SchemaGenerator


def test_the_schema_describes_bearer_tokens(settings, db):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    }

    schema = SchemaGenerator().get_schema(request=None, public=True)

    scheme = schema["components"]["securitySchemes"]["apiToken"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "itsm_<prefix>_<secret>")
    due = schema["paths"]["/api/v1/calendars/{id}/due/"]["get"]
    assert {"apiToken": []} in due["security"]
