"""The shared Powertools logger. JSON lines; the Lambda event itself is never logged (it can carry
capability tokens in its path)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="meetpilot", log_uncaught_exceptions=False)
