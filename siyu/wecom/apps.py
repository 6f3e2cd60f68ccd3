from django.apps import AppConfig


class WecomConfig(AppConfig):
    name = "siyu.wecom"
    label = "wecom"
