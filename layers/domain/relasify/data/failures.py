"""What a failed call to AWS raises out of the data-access modules, named here so that services can
catch it (an optional read that may fail, a best-effort copy) without importing boto3 or pynamodb types."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

AWS_CALL_FAILURES: tuple[type[Exception], ...] = (PynamoDBException, BotoCoreError, ClientError)
