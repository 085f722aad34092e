"""The Azure AD side: OpenID discovery, client-credentials tokens, access-token checks.

msal talks to this exactly as to login.microsoftonline.com: it reads
``/{tenant}/v2.0/.well-known/openid-configuration`` and POSTs the token
endpoint with a client secret or a signed client assertion (RS256/PS256,
verified against the app's registered certificate). Refusals carry Azure AD's
error codes (AADSTS...) because the product reports those to operators.
Access tokens are HS256 JWTs signed with the tenant's key; only this server
reads them.
"""

from __future__ import annotations

import base64
import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lab.exo.config import ExoConfig
from lab.exo.errors import AadError

__all__ = ["AUDIENCE", "SCOPE", "InvalidToken", "TokenService"]

SCOPE: Final = "https://outlook.office365.com/.default"
AUDIENCE: Final = "https://outlook.office365.com"
ROLE: Final = "Exchange.ManageAsApp"
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or for another tenant."""


@dataclass(frozen=True)
class _App:
    client_id: str
    secret: str | None = field(repr=False)
    certificate: x509.Certificate | None
    roles: tuple[str, ...]

    @property
    def thumbprints(self) -> set[str]:
        if self.certificate is None:
            return set()
        def b64(digest: bytes) -> str:
            return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        sha1 = self.certificate.fingerprint(hashes.SHA1())  # noqa: S303 - x5t is defined as SHA-1
        sha256 = self.certificate.fingerprint(hashes.SHA256())
        return {b64(sha1), b64(sha256), sha1.hex().upper()}


def _load_apps(apps: list[dict[str, Any]]) -> dict[str, _App]:
    loaded = {}
    for entry in apps:
        secret_file = entry.get("client_secret_file")
        cert_file = entry.get("certificate_file")
        secret = Path(secret_file).read_text(encoding="utf-8").strip() if secret_file else None
        certificate = (x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
                       if cert_file else None)
        client_id = str(entry["client_id"]).lower()
        loaded[client_id] = _App(client_id, secret, certificate,
                                 tuple(entry.get("roles") or (ROLE,)))
    return loaded


class TokenService:
    """Issues and checks tokens for one tenant."""

    def __init__(self, config: ExoConfig, signing_key: bytes) -> None:
        self.config = config
        self.signing_key = signing_key
        self.apps = _load_apps(config.apps)
        self.tenant_names = {config.tenant_id.lower(), config.initial_domain.lower(),
                             *(d.lower() for d in config.domains)}

    def knows_tenant(self, segment: str) -> bool:
        return segment.lower() in self.tenant_names

    def _unknown_tenant(self, segment: str) -> AadError:
        return AadError(400, "invalid_request", 90002,
                        f"Tenant '{segment}' not found. Check to make sure you have the correct "
                        "tenant ID and are signing into the correct cloud.")

    # ------------------------------------------------------------------ discovery

    def openid_configuration(self, base_url: str, segment: str) -> dict[str, Any]:
        if not self.knows_tenant(segment):
            raise self._unknown_tenant(segment)
        tid = self.config.tenant_id
        return {
            "issuer": f"{base_url}/{tid}/v2.0",
            "authorization_endpoint": f"{base_url}/{tid}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base_url}/{tid}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base_url}/{tid}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base_url}/{tid}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    # ------------------------------------------------------------------ tokens

    def issue(self, base_url: str, segment: str, form: Mapping[str, str]) -> dict[str, Any]:
        """Answer a token request, or raise AadError as Azure AD would."""
        if not self.knows_tenant(segment):
            raise self._unknown_tenant(segment)
        client_id = form.get("client_id", "").strip().lower()
        if not client_id:
            raise AadError(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'client_id'.")
        if form.get("grant_type") != "client_credentials":
            raise AadError(400, "unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type "
                           f"'{form.get('grant_type', '')[:40]}'.")
        app = self.apps.get(client_id)
        if app is None:
            raise AadError(400, "unauthorized_client", 700016,
                           f"Application with identifier '{client_id}' was not found in the "
                           f"directory '{self.config.tenant_name}'. This can happen if the "
                           "application has not been installed by the administrator of the "
                           "tenant or consented to by any user in the tenant. You may have sent "
                           "your authentication request to the wrong tenant.")
        scopes = form.get("scope", "").split()
        if scopes != [SCOPE]:
            raise AadError(400, "invalid_scope", 70011,
                           "The provided request must include a 'scope' input parameter. The "
                           "provided value for the input parameter 'scope' is not valid. The "
                           f"scope {form.get('scope', '')[:200]} is not valid.")
        if "client_secret" in form:
            self._check_secret(app, form["client_secret"])
        elif "client_assertion" in form:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise AadError(400, "invalid_request", 50027,
                               "Invalid client_assertion_type.")
            self._check_assertion(app, form["client_assertion"], base_url)
        else:
            raise AadError(401, "invalid_client", 7000218,
                           "The request body must contain the following parameter: "
                           "'client_assertion' or 'client_secret'.")
        return self._access_token(app)

    def _check_secret(self, app: _App, secret: str) -> None:
        if app.secret is None or not hmac.compare_digest(app.secret.encode(), secret.encode()):
            raise AadError(401, "invalid_client", 7000215,
                           "Invalid client secret provided. Ensure the secret being sent in the "
                           "request is the client secret value, not the client secret ID, for a "
                           f"secret added to app '{app.client_id}'.")

    def _check_assertion(self, app: _App, assertion: str, base_url: str) -> None:
        def refuse(code: int, why: str) -> AadError:
            return AadError(401, "invalid_client", code, why)

        if app.certificate is None:
            raise refuse(700027, "Client assertion contains an invalid signature. [Reason - "
                         "The key was not found.]")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise refuse(50027, "JWT token is invalid or malformed.") from None
        presented = str(header.get("x5t#S256") or header.get("x5t") or "")
        # clients differ on padding and alphabet (msal pads; RFC 7515 says base64url)
        canonical = presented.rstrip("=").replace("+", "-").replace("/", "_")
        if presented and canonical not in app.thumbprints:
            raise refuse(700027, "Client assertion contains an invalid signature. [Reason - "
                         f"The key was not found., Thumbprint of key used by client: "
                         f"'{presented[:60]}']")
        audiences = [f"{base_url}/{name}/oauth2/v2.0/token" for name in sorted(self.tenant_names)]
        try:
            claims = jwt.decode(
                assertion, key=app.certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"], audience=audiences,
                options={"require": ["exp", "aud", "iss", "sub"]}, leeway=60,
            )
        except jwt.ExpiredSignatureError:
            raise refuse(700024, "Client assertion is not within its valid time range.") from None
        except jwt.InvalidAudienceError:
            raise refuse(700027, "Client assertion failed signature validation. [Reason - "
                         "The audience claim is not the token endpoint.]") from None
        except jwt.PyJWTError:
            raise refuse(700027, "Client assertion failed signature validation.") from None
        if str(claims["iss"]).lower() != app.client_id or str(claims["sub"]).lower() != app.client_id:
            raise refuse(700023, "Client assertion audience or issuer claim does not match "
                         "the client_id.")

    def _access_token(self, app: _App) -> dict[str, Any]:
        now = int(time.time())
        lifetime = self.config.token_lifetime_seconds
        claims = {
            "aud": AUDIENCE,
            "iss": f"https://sts.windows.net/{self.config.tenant_id}/",
            "iat": now, "nbf": now, "exp": now + lifetime,
            "tid": self.config.tenant_id,
            "appid": app.client_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "roles": list(app.roles),
            "idtyp": "app",
            "ver": "1.0",
        }
        token = jwt.encode(claims, self.signing_key, algorithm="HS256")
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": token}

    def verify_bearer(self, authorization: str | None, segment: str) -> dict[str, Any]:
        """Claims of a valid bearer token for this tenant; InvalidToken otherwise."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise InvalidToken("no bearer token")
        try:
            claims: dict[str, Any] = jwt.decode(
                authorization[7:].strip(), self.signing_key, algorithms=["HS256"],
                audience=AUDIENCE, options={"require": ["exp", "tid", "appid"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid") from None
        if not self.knows_tenant(segment) or claims["tid"] != self.config.tenant_id:
            raise InvalidToken("the token was issued for another tenant")
        if ROLE not in claims.get("roles", []):
            raise InvalidToken(f"the application lacks the {ROLE} role")
        return claims
