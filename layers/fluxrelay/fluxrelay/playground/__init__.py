"""The playground: `GET /playground`, a page for trying the API in a browser.

A Powertools `Router` the API function includes. The page and its script are static files
beside this module, served as they are (no build step, nothing loaded from elsewhere); everything
they show comes from the public API, called from the browser with the key the user types in, so
the routes themselves need no API key and hold no data. They stay out of the OpenAPI document.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

router = Router()

_STATIC = Path(__file__).parent
# name -> content type: the only files served, so no path from a URL ever reaches the disk.
_FILES = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
_HEADERS = {
    # Only our own script and style run; images come from presigned S3 URLs (or base64 data
    # URLs), uploads are PUT to presigned S3 URLs, whose origin the page cannot know in advance.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src * data: blob:; "
        "connect-src *; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Presigned URLs are credentials for their object: never hand them on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> str:
    return (_STATIC / name).read_text(encoding="utf-8")


def _serve(name: str) -> Response[str]:
    return Response(status_code=200, content_type=_FILES[name], body=_read(name), headers=dict(_HEADERS))


@router.get("/playground", include_in_schema=False)
def playground() -> Response[str]:
    return _serve("index.html")


@router.get("/playground/<name>", include_in_schema=False)
def playground_file(name: str) -> Response[str]:
    if name not in _FILES:
        raise NotFoundError  # the app's 404 envelope, as for any unknown path
    return _serve(name)
