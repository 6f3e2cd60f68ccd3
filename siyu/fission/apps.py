from django.apps import AppConfig


class FissionConfig(AppConfig):
    name = "siyu.fission"
    label = "fission"
