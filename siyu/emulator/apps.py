from django.apps import AppConfig


class EmulatorConfig(AppConfig):
    name = "siyu.emulator"
    label = "emulator"
