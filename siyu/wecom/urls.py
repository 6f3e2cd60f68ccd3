from django.urls import path

from siyu.wecom import views

app_name = "wecom"

urlpatterns = [
    # <key> is the connection id or the corp id, whichever the admin typed into WeCom's callback settings.
    path("callback/<str:key>/", views.callback, name="callback"),
]
