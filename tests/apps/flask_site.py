"""A Flask app that greets the user heroku-bouncer logged in, from the identity headers."""

from urllib.parse import unquote

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def whoami(path):
    # The filter percent-encodes names with non-ASCII characters as UTF-8.
    name = request.headers.get("X-Heroku-User-Name")
    return jsonify(
        email=request.headers.get("X-Heroku-User-Email"),
        id=request.headers.get("X-Heroku-User-Id"),
        name=unquote(name) if name is not None else None,
    )
