"""The identity provider's side of a user: their Cognito user pool account.

`DELETE /v1/me` removes it too, so the person cannot sign in with it again and its refresh tokens
stop working. Users federated from Google through the pool are Cognito users as well (username
`Google_<id>`, a `sub` of their own); the Google account itself is outside our system.
"""

from __future__ import annotations

from relasify.data import aws_clients
from relasify.settings import get_settings


def reset_for_tests() -> None:
    aws_clients.reset()


def delete_account(sub: str) -> bool:
    """Delete the user pool user with this `sub`; False when there is nothing to delete (no pool
    configured, as in the local stack whose tokens come from a local issuer, or already gone).
    The username is looked up by `sub` because a federated user's username is not their `sub`."""
    pool_id = get_settings().user_pool_id
    if not pool_id:
        return False
    if '"' in sub or "\\" in sub:  # a Cognito sub is a UUID; never let it break out of the filter
        return False
    cognito = aws_clients.client("cognito-idp")  # only account deletion talks to Cognito
    users = cognito.list_users(UserPoolId=pool_id, Filter=f'sub = "{sub}"', Limit=1).get("Users", [])
    if not users:
        return False
    try:
        cognito.admin_delete_user(UserPoolId=pool_id, Username=users[0]["Username"])
    except cognito.exceptions.UserNotFoundException:
        return False  # deleted concurrently: the outcome we wanted
    return True
