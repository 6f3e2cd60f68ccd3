from django.apps import AppConfig


class StorecodesConfig(AppConfig):
    name = "siyu.storecodes"
    label = "storecodes"
