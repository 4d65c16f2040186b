from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse


@login_required
def desk(request: HttpRequest) -> HttpResponse:
    return HttpResponse("desk")


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    return HttpResponse("portal")
