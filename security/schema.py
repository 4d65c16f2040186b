"""drf-spectacular description of the API token authentication (imported by `SecurityConfig.ready`)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "security.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "itsm_<prefix>_<secret>",
            "description": (
                "An API token from the 'API tokens' page, sent as `Authorization: Bearer itsm_<prefix>_<secret>`. "
                "Each endpoint lists the scopes it needs; the token's user must also be allowed to see the objects. "
                "See docs/api-tokens.md."
            ),
        }
