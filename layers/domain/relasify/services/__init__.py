"""Business logic. No boto3, pynamodb or HTTP types here: data access goes through relasify.data."""
