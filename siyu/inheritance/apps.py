from django.apps import AppConfig


class InheritanceConfig(AppConfig):
    name = "siyu.inheritance"
    label = "inheritance"
