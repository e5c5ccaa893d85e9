"""Which scikit-learn release's rules apply to an estimator, and what those rules say.

A pickled estimator keeps the release that wrote it in ``_sklearn_version`` (put back by
edgesparse.loader); an estimator fitted in this process has none and follows the installed
release. Converters read the estimator by the rules of that release, not of the installed one:
scikit-learn 1.9 unpickles a 1.3 LogisticRegression(multi_class="ovr") without complaint and
then computes its predict_proba with softmax.

What a release's rules changed for an estimator is noted on it (:func:`note`) and summed up
for the compress summary (:func:`rules_note`). Nothing here imports scikit-learn.
"""

from __future__ import annotations

import sys
from typing import Any

from edgesparse.errors import UnsupportedModelError
from edgesparse.frontends.base import CORRUPT, name_of, shown

__all__ = [
    "evidently_old",
    "installed_sklearn",
    "logistic_head",
    "note",
    "pickled_by_other_release",
    "release",
    "rules_note",
    "sgd_head",
    "sklearn_version",
    "written_by_other",
]

_VERSION_ATTRIBUTE = "_sklearn_version"
# LogisticRegression.predict_proba has read as in logistic_head since 0.22 (multi_class
# "auto"); older releases (and those before 0.18, which recorded no version) are refused.
_OLDEST_RULES = (0, 22)
_NOTES = "_edgesparse_rule_notes"


def installed_sklearn() -> str:
    """The installed scikit-learn's version, when it is imported ("unknown" otherwise)."""
    sklearn = sys.modules.get("sklearn")
    return str(getattr(sklearn, "__version__", "unknown"))


def sklearn_version(estimator: Any) -> str:
    """The scikit-learn release whose rules apply to ``estimator``: the one that pickled it
    (``_sklearn_version``), else the installed one; ``"n/a"`` for non-scikit-learn objects."""
    modules = {(k.__module__ or "").split(".")[0] for k in type(estimator).__mro__}
    if "sklearn" not in modules:
        return "n/a"
    written = getattr(estimator, "__dict__", {}).get(_VERSION_ATTRIBUTE)
    if isinstance(written, str):
        return written
    return installed_sklearn()


def release(version: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a scikit-learn version string, or None when it is not one
    edgesparse knows the rules of (unparseable, "pre-0.18", or older than 0.22)."""
    parts = version.split(".")
    try:
        found = (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        return None
    return found if found >= _OLDEST_RULES else None


def written_by_other(est: Any) -> bool:
    """Whether ``est`` was pickled by a scikit-learn release other than the installed one."""
    return sklearn_version(est) not in (installed_sklearn(), "n/a")


def pickled_by_other_release(estimator: Any) -> str | None:
    """The scikit-learn version that pickled ``estimator`` when it is not the installed one
    (its methods then follow the installed release's rules, not its owner's), else None."""
    return sklearn_version(estimator) if written_by_other(estimator) else None


def _rules(est: Any) -> tuple[int, int]:
    found = release(sklearn_version(est))
    if found is None:  # to_ir refuses these before converting
        raise UnsupportedModelError(
            f"{name_of(est)}: pickled by scikit-learn {shown(sklearn_version(est))} (its "
            "_sklearn_version), whose rules edgesparse does not know"
        )
    return found


def rules_note(estimator: Any, version: str) -> str:
    """One line for the compress summary: by which release's rules the model was read."""
    if version == "n/a":
        return "n/a"
    installed = installed_sklearn()
    which = f"read by the rules of scikit-learn {version}"
    if version != installed:
        which += f" (installed: {installed})"
    notes = [n for n in _rule_notes(estimator) if n]
    return which + (": " + "; ".join(dict.fromkeys(notes)) if notes else "")


def _rule_notes(est: Any) -> list[str]:
    """What a release's rules changed for ``est`` and the estimators inside it."""
    notes = list(getattr(est, "__dict__", {}).get(_NOTES, []))
    for attr in ("steps", "estimators_"):
        inner = getattr(est, attr, None)
        if isinstance(inner, list):
            for item in inner:
                step = item[1] if isinstance(item, tuple) and len(item) == 2 else item
                notes.extend(_rule_notes(step))
    return notes


def note(est: Any, text: str) -> None:
    """Record what a release's rules changed, for the compress summary."""
    attrs = getattr(est, "__dict__", None)
    if isinstance(attrs, dict):
        attrs.setdefault(_NOTES, [])
        if text not in attrs[_NOTES]:
            attrs[_NOTES].append(text)


def logistic_head(est: Any, n_classes: int) -> str:
    """How ``LogisticRegression(CV).predict_proba`` turns scores into probabilities, by the
    rules of the release that wrote ``est``.

    scikit-learn 1.8 removed ``multi_class``: binary -> expit, multiclass -> softmax. From 0.22
    to 1.7 ``predict_proba`` reads (1.5-1.7 also accept the default "deprecated" as "auto")::

        ovr = multi_class in ("ovr", "warn") or (
            multi_class in ("auto", "deprecated") and (n_classes <= 2 or solver == "liblinear"))

    one-vs-rest is expit per class, normalised to sum to 1 (``_predict_proba_lr``); otherwise
    softmax, which for a binary model is softmax([-d, d]), i.e. expit(2 d).
    """
    found = _rules(est)
    attrs = getattr(est, "__dict__", {})
    if found >= (1, 8) and "multi_class" in attrs:
        # Only releases up to 1.7 have multi_class: a model unpickled without edgesparse's
        # loader (which keeps _sklearn_version) still says where it comes from.
        note(est, f"{name_of(est)} has multi_class, so it was written by scikit-learn <= 1.7")
        found = (1, 7)
    if found >= (1, 8):
        return "logistic" if n_classes == 2 else "softmax"
    multi_class = attrs.get("multi_class", "auto")
    solver = getattr(est, "solver", "lbfgs")
    if multi_class in ("ovr", "warn") or (
        multi_class in ("auto", "deprecated") and (n_classes <= 2 or solver == "liblinear")
    ):
        if n_classes > 2:
            why = f"multi_class={multi_class!r}" + (
                f", solver={solver!r}" if multi_class != "ovr" else ""
            )
            note(est, f"{name_of(est)} predict_proba one-vs-rest normalised ({why})")
        return "logistic"
    return _multinomial_head(est, multi_class, n_classes)


def _multinomial_head(est: Any, multi_class: Any, n_classes: int) -> str:
    """The head of a release <= 1.7 LogisticRegression that is not one-vs-rest."""
    version = sklearn_version(est)
    if multi_class not in ("multinomial", "auto", "deprecated"):
        raise UnsupportedModelError(
            f"{name_of(est)}: pickled by scikit-learn {version} with multi_class="
            f"{shown(str(multi_class))}, which edgesparse cannot read by that version's rules"
        )
    if n_classes == 2:
        raise UnsupportedModelError(
            f"{name_of(est)}: pickled by scikit-learn {version} with multi_class='multinomial' "
            "on two classes; that version's predict_proba is softmax([-d, d]) = expit(2 d), "
            "which edgesparse cannot reproduce next to its decision_function d; refit it with "
            "multi_class='auto' (or with this scikit-learn)"
        )
    return "softmax"


# Loss names by release: "log" was renamed "log_loss" in 1.1 and removed in 1.3.
_SGD_HEADS = {"log_loss": "logistic", "log": "logistic", "modified_huber": "modified_huber"}


def sgd_head(est: Any, n_classes: int) -> str:
    """The head of an SGD-trained classifier, from its ``loss`` (``hard`` when it has no
    ``predict_proba``)."""
    loss = getattr(est, "loss", "")
    if not isinstance(loss, str):  # it decides the output function: never guess it
        raise UnsupportedModelError(
            f"{name_of(est)}: loss must be a name such as 'hinge' or 'log_loss', but it is a "
            f"{type(loss).__name__}; {CORRUPT}"
        )
    if loss == "log":
        # Only releases up to 1.2 accept "log" (the name of log_loss before 1.1).
        note(est, f"{name_of(est)} loss='log' read as 'log_loss' (scikit-learn <= 1.2)")
    return _SGD_HEADS.get(loss, "hard")


def evidently_old(est: Any) -> bool:
    """Whether ``est`` holds a parameter only older releases have, whatever version it
    claims (``multi_class``, removed in 1.8; ``loss="log"``, removed in 1.3)."""
    attrs = getattr(est, "__dict__", {})
    loss = attrs.get("loss")  # a crafted file may hold anything here, even an array
    return "multi_class" in attrs or (isinstance(loss, str) and loss == "log")
