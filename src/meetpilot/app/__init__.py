"""Use cases. They see the domain and the ports, never boto3 or HTTP."""
