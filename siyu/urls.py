from django.urls import include, path
from django.views.i18n import set_language

from siyu.core.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("siyu.api.urls")),
    path("wecom/", include("siyu.wecom.urls")),
    path("s/", include("siyu.storecodes.urls")),
    path("i18n/setlang/", set_language, name="set_language"),
    path("", include("siyu.campaigns.urls")),  # fission participants' public pages (f/)
    path("", include("siyu.console.urls")),
]
