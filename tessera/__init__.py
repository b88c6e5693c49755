"""tessera: authorization server and client SDK for B2B payment channels."""

__version__ = "0.1.0"
