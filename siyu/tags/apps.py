from django.apps import AppConfig


class TagsConfig(AppConfig):
    name = "siyu.tags"
    label = "tags"
