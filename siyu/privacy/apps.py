from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "siyu.privacy"
    label = "privacy"
