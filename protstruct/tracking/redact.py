"""One redaction rule for every value that leaves the process: params, tags, artifacts, Hydra's
files, logs, console output, reports and error texts.

What counts as a secret:
- the userinfo of any URI (``scheme://user:password@host`` → ``scheme://***@host``);
- the value of any key that looks secret (``password``, ``token``, ``secret``, ``api_key``,
  ``access_key``, ``credential``), in a config tree or as ``key=value`` / ``key: value`` in text;
- the values of this process's secret environment variables (``MLFLOW_TRACKING_PASSWORD``,
  ``MLFLOW_TRACKING_TOKEN``, ``PGPASSWORD``, anything ending in ``PASSWORD``/``TOKEN``/``SECRET``/
  ``API_KEY``), wherever they appear: raw, percent-encoded, and as HTTP basic-auth base64.

Credentials are meant to travel in the environment (MLflow's ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``, PostgreSQL's ``~/.pgpass``); :func:`split_credentials` moves the
userinfo of an ``http(s)`` tracking URI there, so the URI MLflow sees never carries it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

MASK = "***"
_SECRET_WORDS = r"pass(?:word|wd)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?"
SECRET_KEY = re.compile(rf"(?:^|[._-])(?:{_SECRET_WORDS})$", re.IGNORECASE)
SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|API_KEY|ACCESS_KEY)$")
_URI_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#'\"<>\[\]{}]*@")
_KEY_VALUE = re.compile(rf"(?i)(\b[\w.\-]*(?:{_SECRET_WORDS})\b[\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;'\"}}\]]+)")
_MIN_SECRET = 4  # shorter env values would mask ordinary words


def _env_secrets() -> list[str]:
    values = [v for k, v in os.environ.items() if SECRET_ENV.search(k.upper()) and len(v) >= _MIN_SECRET]
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
    forms = set()
    for value in values:
        forms |= {value, quote(value, safe=""), quote(value), quote_plus(value)}
    if user and password:
        forms.add(base64.b64encode(f"{user}:{password}".encode()).decode())
    return sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with URI userinfo, secret-looking ``key=value`` pairs and secret env values masked."""
    if not isinstance(text, str) or not text:
        return text
    for secret in _env_secrets():
        text = text.replace(secret, MASK)
    text = _URI_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact_tree(tree):
    """A copy of a config tree (dicts, lists, scalars) with secret keys' values and secrets in
    strings masked."""
    if isinstance(tree, dict):
        return {
            k: (MASK if SECRET_KEY.search(str(k)) and tree[k] not in (None, "") else redact_tree(v))
            for k, v in tree.items()
        }
    if isinstance(tree, (list, tuple)):
        return [redact_tree(v) for v in tree]
    return redact(tree) if isinstance(tree, str) else tree


def redact_file(path) -> None:
    """Rewrite a text file in place with its secrets masked (Hydra's saved configs)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return
    clean = redact(text)
    if clean != text:
        tmp = path.with_name(f".{path.name}.redacting")
        tmp.write_text(clean)
        os.replace(tmp, path)


def split_credentials(uri: str) -> str:
    """An ``http(s)`` URI without its userinfo; the user and password move to MLflow's
    ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` in this process's environment
    (inherited by the workers it starts). Other URIs (``postgresql://``) are returned as they are:
    their driver needs them whole, and :func:`redact` masks them on the way out."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(user)
    if password:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(password)
    return urlunsplit(parts._replace(netloc=host))


class RedactingFilter(logging.Filter):
    """A logging filter (set on Hydra's console and file handlers) that masks secrets in every
    record, its arguments and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
