"""Live reports in the browser: a small WSGI app that serves the dashboard and every report.

``ReportsApp(crm, user=...)`` is a WSGI application. Mount it in the host application, whose sign-in says
who the user is (``user`` reads it from the request's WSGI environ), or start it on its own with
``crmkit serve``. Every request runs as that user (``crm.as_user``), so the role's permissions, the
branches it reaches and the masking of personal data apply as they do in the Python API. Routes (all
``GET``, nothing is ever written):

* ``/`` the dashboard, ``?period=day|week|month|quarter|year``;
* ``/reports/<name>?<params>`` a report's page, with a form of its parameters and download links;
* ``/reports/<name>.csv|.xlsx|.json?<params>`` the report's rows as a file;
* ``/definitions`` how the numbers are counted.

Werkzeug parses the requests, routes them and runs the development server; it is the optional extra
``crmkit[web]``, imported only by this module.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

try:
    from werkzeug import serving
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import Map, Rule
    from werkzeug.serving import BaseWSGIServer
    from werkzeug.wrappers import Request, Response
except ImportError as exc:  # pragma: no cover - exercised by the command's test with Werkzeug hidden
    raise ImportError("the web app needs Werkzeug: pip install 'crmkit[web]'") from exc

from crmkit.errors import AccessDenied, NotFound, UserRequired, ValidationError
from crmkit.reports.engine import ReportResult, form_fields
from crmkit.reports.site import PERIOD_KINDS, Links, PathLinks, grouped

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from crmkit.app import CRM

#: Who makes a request: the signed-in user's id, read from the request's WSGI environ, or ``None``.
UserOf = Callable[[dict[str, Any]], int | None]

#: The files a report downloads as, with their media types.
DOWNLOADS = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: Pages are self-contained (inline styles, SVG charts): they need nothing from anywhere, the app's own
#: pages aside, and personal data is kept out of caches.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
TITLES = {400: "Bad request", 401: "Sign-in required", 403: "Not allowed", 404: "Not found", 405: "Not allowed"}


@attrs.frozen
class _NoDownloads:
    """A page's links without download links (a form whose parameters did not validate)."""

    links: Links
    live: bool = True

    def home(self) -> str:
        return self.links.home()

    def report(self, name: str, params: Mapping[str, Any] | None = None) -> str:
        return self.links.report(name, params)

    def download(self, name: str, format: str, params: Mapping[str, Any] | None = None) -> str | None:
        return None

    def definitions(self, anchor: str = "") -> str:
        return self.links.definitions(anchor)


class ReportsApp:
    """The dashboard, the reports and their downloads as a WSGI application.

    ``user(environ)`` gives the id of the user making the request (the host application's session decides);
    ``None``, or no ``user`` at all, is a request nobody signed in to: refused with 401 when the CRM is built
    with ``require_user=True``, else run as the application itself. ``prefix`` is a path the routes are under
    when the host passes whole paths; an app mounted at a ``SCRIPT_NAME`` (Werkzeug's
    ``DispatcherMiddleware``, a WSGI server's mount point) needs none.
    """

    def __init__(self, crm: CRM, *, user: UserOf | None = None, prefix: str = "") -> None:
        self.crm = crm
        self.user = user
        self.prefix = prefix.rstrip("/")
        self.routes = Map(
            [
                Rule("/", endpoint="dashboard", methods=["GET"]),
                Rule("/definitions", endpoint="definitions", methods=["GET"]),
                Rule("/favicon.ico", endpoint="favicon", methods=["GET"]),
                Rule("/reports/<target>", endpoint="report", methods=["GET"]),
            ],
            strict_slashes=False,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self.respond(request)
        response.headers.update({k: v for k, v in HEADERS.items() if k not in response.headers})
        return response(environ, start_response)

    # -- a request -------------------------------------------------------------------------------------

    def respond(self, request: Request) -> Response:
        links = PathLinks(request.script_root + self.prefix)
        path = request.path
        if self.prefix:
            if path != self.prefix and not path.startswith(f"{self.prefix}/"):
                return self.error(404, f"nothing here: {path}", links, menu=False)
            path = path[len(self.prefix) :] or "/"
        refused: HTTPException | None = None
        try:
            endpoint, args = self.routes.bind("", "/").match(path, method=request.method)
        except HTTPException as exc:
            endpoint, args, refused = "", {}, exc
        else:
            if endpoint == "favicon":  # a browser asks for one: none, rather than a 404 in its console
                return Response(status=204)
        user_id = self.user(request.environ) if self.user is not None else None
        try:
            acting = self.crm.as_user(user_id) if user_id is not None else contextlib.nullcontext()
        except (NotFound, AccessDenied) as exc:  # the session names a user who is gone, or inactive
            return self.error(403, str(exc), links, menu=False)
        # inside the user's block, error pages too: their menu lists the reports this user may run
        with acting:
            try:
                self.crm.access.actor()  # UserRequired when the CRM needs a user and none signed in
                if refused is not None:
                    response = self.error(refused.code or 404, refused.description or "", links)
                    if refused.code == 405:
                        response.headers["Allow"] = "GET, HEAD"
                    return response
                return self.dispatch(endpoint, args, request, links)
            except UserRequired:
                return self.error(401, "Sign in to see the reports.", links, menu=False)
            except AccessDenied as exc:
                return self.error(403, str(exc), links)
            except NotFound as exc:
                return self.error(404, str(exc), links)

    def dispatch(self, endpoint: str, args: Mapping[str, str], request: Request, links: PathLinks) -> Response:
        reports = self.crm.reports
        if endpoint == "dashboard":
            period = request.args.get("period") or "month"
            if period not in PERIOD_KINDS:
                return self.error(400, f"period: must be one of {', '.join(PERIOD_KINDS)}, not {period!r}", links)
            return html(reports.render_dashboard(reports.dashboard(period), links=links))
        if endpoint == "definitions":
            return html(reports.definitions_page(links=links))
        target = args["target"]
        name, _, ext = target.rpartition(".")
        if ext in DOWNLOADS and target not in {r.name for r in reports.all()}:
            return self.download(name, ext, request, links)
        return self.page(target, request, links)

    def page(self, name: str, request: Request, links: PathLinks) -> Response:
        result = self.run(name, request)
        if not isinstance(result, ReportResult):
            return self.invalid(name, request, result, links)
        return html(self.crm.reports.render_result(result, format="html", links=links))

    def download(self, name: str, ext: str, request: Request, links: PathLinks) -> Response:
        result = self.run(name, request)
        if not isinstance(result, ReportResult):
            return self.invalid(name, request, result, links)
        reports = self.crm.reports
        body: bytes | str = reports.xlsx(result) if ext == "xlsx" else reports.render_result(result, format=ext)
        response = Response(body, content_type=DOWNLOADS[ext])
        response.headers.set("Content-Disposition", "attachment", filename=filename(result, ext))
        return response

    def run(self, name: str, request: Request) -> ReportResult | ValidationError:
        """The report's rows for the request's parameters, or why they do not validate. An empty field of
        the form is a parameter not given (its default applies)."""
        self.crm.reports.get(name)  # an unknown report is a 404, whatever the parameters
        try:
            return self.crm.reports.run(name, given(request))
        except ValidationError as exc:
            return exc

    # -- pages -----------------------------------------------------------------------------------------

    def invalid(self, name: str, request: Request, problem: ValidationError, links: PathLinks) -> Response:
        """The report's page again: the form with what was sent, and crmkit's messages by field; 400."""
        reports = self.crm.reports
        report = reports.get(name)
        page = reports.env.get_template("web/invalid.html").render(
            reports.page_context(report, _NoDownloads(links)),
            params={},
            errors=[(field, _messages(problem.errors[field])) for field in sorted(problem.errors)],
            form=form_fields(report, given(request)),
            generated_at=None,  # nothing was computed
        )
        return html(page, status=400)

    def error(self, status: int, message: str, links: Links, *, menu: bool = True) -> Response:
        """A small page in the reports' layout; its navigation lists the reports the acting user may run
        (none for a request nobody signed in to)."""
        reports = self.crm.reports
        menu = menu and self.crm.access.actor().can("reports:run")
        sections: Any = grouped(reports.visible()) if menu else ()
        page = reports.env.get_template("web/error.html").render(
            title=TITLES.get(status, "Error"),
            message=message,
            status=status,
            fmt=reports.formats,
            links=links,
            sections=sections,
        )
        return html(page, status=status)


def given(request: Request) -> dict[str, str]:
    """The query string's parameters, without the empty ones an untouched form field sends."""
    return {key: value for key, value in request.args.items() if value != ""}


def filename(result: ReportResult, ext: str) -> str:
    """``<report>-<since>-<until>.<ext>`` for a report over a period, else ``<report>.<ext>``."""
    dates = [v.isoformat() for k, v in result.params.items() if k in ("since", "until", "as_of") and v is not None]
    return "-".join([result.report.name, *dates]) + f".{ext}"


def html(page: str, status: int = 200) -> Response:
    return Response(page, status=status, content_type="text/html; charset=utf-8")


def _messages(problem: Any) -> str:
    if isinstance(problem, (list, tuple)):
        return " ".join(_messages(p) for p in problem)
    if isinstance(problem, Mapping):
        return "; ".join(f"{k}: {_messages(v)}" for k, v in problem.items())
    return str(problem)


# -- serving ---------------------------------------------------------------------------------------------


def make_server(app: Callable[..., Iterable[bytes]], host: str = "127.0.0.1", port: int = 8000) -> BaseWSGIServer:
    """Werkzeug's development server for ``app``, a thread per request, bound (port 0: any free port) but
    not yet serving."""
    return serving.make_server(host, port, app, threaded=True)


def address(server: BaseWSGIServer) -> str:
    host = server.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.server_port}/"


def local(host: str) -> bool:
    """Whether ``host`` is this machine only (the loopback addresses, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_forever(server: BaseWSGIServer) -> None:
    """Serve until interrupted (Ctrl+C), then release the port."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
