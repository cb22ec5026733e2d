"""meetpilot: calendar-driven meeting-bot orchestration on AWS serverless."""

__version__ = "0.1.0"
