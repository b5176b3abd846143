"""The middleware a Django app adds to take its user from heroku-bouncer."""

from django.contrib.auth.middleware import RemoteUserMiddleware


class HerokuUserMiddleware(RemoteUserMiddleware):
    """Logs in the user named by the x-heroku-user-email header that the filter sets.

    RemoteUserBackend creates a User named after the email on the first visit. A request
    without the header logs out a user who was logged in this way.
    """

    header = "HTTP_X_HEROKU_USER_EMAIL"
