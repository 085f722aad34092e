"""`POST /adminapi/{beta|v1.0}/{tenant}/InvokeCommand`: what the EXO V3 module calls.

Order of checks, as the service does it: bearer token, rate budget (429 +
Retry-After), concurrent requests per tenant (the "maximum number of
concurrent requests" body), injected 503s, injected latency; then the cmdlet.
Results are paged (``Prefer: odata.maxpagesize``, absolute ``@odata.nextLink``
with an opaque skip token; POST the same body to it) and typed
(``Prop@odata.type``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, Final
from urllib.parse import quote

from lab.exo import errors
from lab.exo.cmdlets import Context, Output, invoke
from lab.exo.config import ExoConfig
from lab.exo.http import Request, Response, json_response, text_response
from lab.exo.odata import PageSigner, PageToken, annotate, parse_select, select, take_page
from lab.exo.throttle import CONCURRENCY_MESSAGE, Throttle
from lab.exo.tokens import InvalidToken, TokenService

__all__ = ["AdminApi"]

log = logging.getLogger("lab.exo.adminapi")

ODATA_JSON: Final = ("application/json;odata.metadata=minimal;odata.streaming=true;"
                     "IEEE754Compatible=false;charset=utf-8")
_MAXPAGESIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)
MORE_RESULTS: Final = ("There are more results available than are currently displayed. To view "
                       "them, increase the value for the ResultSize parameter.")


class AdminApi:
    def __init__(self, config: ExoConfig, context: Context, tokens: TokenService,
                 throttle: Throttle) -> None:
        self.config = config
        self.context = context
        self.tokens = tokens
        self.throttle = throttle
        self.signer = PageSigner(context.tenant.signing_key)

    def handle(self, request: Request, version: str, segment: str) -> Response:
        headers = {"request-id": str(uuid.uuid4()), "OData-Version": "4.0"}
        if "client-request-id" in request.headers:
            headers["client-request-id"] = request.headers["client-request-id"][:64]
        try:
            self.tokens.verify_bearer(request.headers.get("authorization"), segment)
        except InvalidToken as exc:
            headers["WWW-Authenticate"] = (f'Bearer realm="", error="invalid_token", '
                                           f'error_description="{exc}"')
            return json_response(401, {"error": {"code": "Unauthorized",
                                                 "message": f"Access denied: {exc}."}},
                                 headers, note=f"401 {exc}")
        admission = self.throttle.admit()
        headers.update(admission.headers)
        if not admission.allowed:
            return json_response(429, {"error": {
                "code": "TooManyRequests",
                "message": "The request was throttled. Retry after "
                           f"{admission.retry_after} seconds."}}, headers, note="throttled")
        if not self.throttle.enter():
            return text_response(self.config.concurrency_limit_status, CONCURRENCY_MESSAGE,
                                 headers, note="concurrency limit")
        try:
            if self.throttle.should_fail():
                return json_response(503, {"error": {
                    "code": "ServiceUnavailable",
                    "message": "The service is temporarily unavailable."}},
                    {**headers, "Retry-After": "1"}, note="injected 503")
            delay = self.throttle.delay()
            if delay:
                time.sleep(delay)
            return self._invoke(request, version, segment, headers)
        finally:
            self.throttle.leave()

    def _invoke(self, request: Request, version: str, segment: str,
                headers: dict[str, str]) -> Response:
        try:
            body = request.json()
            cmdlet_input = body["CmdletInput"]
            name = str(cmdlet_input["CmdletName"])
            parameters: Any = cmdlet_input.get("Parameters") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            return json_response(400, errors.bad_request(
                'The request body must be {"CmdletInput": {"CmdletName": ..., "Parameters": '
                '{...}}}.', "Microsoft.OData.ODataException").body(), headers, note="bad body")
        try:
            found, output = invoke(self.context, name, parameters)
            return self._page(request, version, segment, found.entity, name, parameters,
                              output, headers)
        except errors.CmdletError as exc:
            return json_response(exc.status, exc.body(), headers,
                                 note=f"{name[:40]} {exc.exception_type.rsplit('.', 1)[-1]}")
        except Exception:
            log.exception("cmdlet %s crashed", name[:40])
            return json_response(500, {"error": {"code": "InternalServerError",
                                                 "message": "Error executing cmdlet"}},
                                 headers, note=f"{name[:40]} crashed")

    def _page(self, request: Request, version: str, segment: str, entity: str, name: str,
              parameters: Any, output: Output, headers: dict[str, str]) -> Response:
        digest = PageSigner.request_digest(name, parameters)
        raw_token = request.query.get("$skiptoken")
        token = self.signer.check(raw_token, digest) if raw_token else None
        after, served = (token.after_seq, token.served) if token else (0, 0)
        page_size = self.config.max_page_size
        match = _MAXPAGESIZE.search(request.headers.get("prefer", ""))
        if match:
            page_size = max(1, min(page_size, int(match.group(1))))
            headers["Preference-Applied"] = f"odata.maxpagesize={page_size}"
        limit = output.result_size
        cap = page_size if limit is None else min(page_size, max(0, limit - served))
        items, last = take_page(output.rows, after, cap)
        served += len(items)
        wanted = parse_select(request.query.get("$select"))
        with self.context.tenant.lock:
            values = [annotate(select(output.render(item), wanted)) for item in items]
        base = f"{request.base_url}/adminapi/{version}/{segment}"
        payload: dict[str, Any] = {"@odata.context": f"{base}/$metadata#{entity}"}
        warnings = list(output.warnings)
        if last is not None:
            if limit is not None and served >= limit:
                warnings.append(MORE_RESULTS)
            else:
                skip = self.signer.issue(PageToken(after_seq=last, served=served), digest)
                link = f"{base}/InvokeCommand?$skiptoken={quote(skip)}"
                if wanted:
                    link += "&$select=" + quote(",".join(wanted))
                payload["@odata.nextLink"] = link
        payload["value"] = values
        if warnings:
            payload["@adminapi.warnings"] = warnings
        return json_response(200, payload, headers, content_type=ODATA_JSON,
                             note=f"{name[:40]} {len(values)} items")

