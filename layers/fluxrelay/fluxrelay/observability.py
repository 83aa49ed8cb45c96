"""Powertools Logger, Tracer and Metrics: one instance each, shared by every handler.

The service name, namespace and log level come from the POWERTOOLS_* variables the template sets.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
