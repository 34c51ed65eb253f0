"""Add-ons and container init of a Docker-packaged Asterisk PBX."""

__version__ = "0.1.0"
