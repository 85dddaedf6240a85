"""tippen-rt: notice, live, when a signed-in user of a SaaS app needs help."""

__version__ = "0.1.0"
