"""Public participant pages of fission campaigns (no login; unguessable tokens)."""

from django.urls import path

from siyu.campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("f/p/<str:token>/", views.participant_page, name="participant"),
    path("f/p/<str:token>/poster.png", views.poster_png, name="poster"),
    path("f/j/<str:share_token>/", views.landing, name="landing"),
]
