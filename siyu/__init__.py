"""siyu (私域): a self-hostable SCRM + CDP for brands that serve customers through WeCom."""

__version__ = "0.1.0"
