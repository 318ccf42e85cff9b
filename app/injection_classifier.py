"""An optional prompt-injection classifier served by vLLM, beside the offline screen.

vLLM serves a sequence-classification model (`--runner pooling`) on `POST /classify`:
`{"model": ..., "input": [texts]}` answers `{"data": [{"index", "label", "probs",
"num_classes"}]}`, where `label` is the most probable class and `probs` are the softmax
probabilities in the model's class order. The injection probability of a text is the total
probability of the classes whose label is in `injection_labels`.

The response names only the predicted class. The name of every class is read from the
model's `config.json` when it can be read on this machine (a local folder, or the Hugging Face
cache that vLLM downloaded into); otherwise it is worked out from the predicted label: a
predicted injection label gives its own probability, a predicted benign label gives the rest.
That is exact for two-class models and for models whose other classes are all attacks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from quarry.settings import DEFAULT_INJECTION_LABELS, ScreeningSettings

log = logging.getLogger(__name__)

URL_SETTING = "QUARRY_SCREENING_CLASSIFIER_URL"
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 10.0


class ClassifierError(RuntimeError):
    """The classifier could not screen the texts; the message names the setting to check."""


class ClassifierUnavailableError(ClassifierError):
    """Nothing answers at the classifier's URL, or it did not answer in time."""


@dataclass
class InjectionClassifier:
    """A client for one vLLM `/classify` server; `probabilities` makes one request per call.

    One client serves every chat session, so it remembers only facts about the server (its
    model, its class labels); a failure is raised to the caller each time, never recorded."""

    url: str
    model: str | None = None
    threshold: float = 0.5
    injection_labels: Sequence[str] = tuple(DEFAULT_INJECTION_LABELS)
    id2label: dict[int, str] | None = None  # None: from the model's config.json if readable
    timeout: httpx.Timeout = field(
        default_factory=lambda: httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    )
    _labels_looked_up: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/").removesuffix("/v1")
        self._wanted = {label.casefold() for label in self.injection_labels}

    @classmethod
    def from_settings(cls, settings: ScreeningSettings) -> InjectionClassifier | None:
        """The classifier the settings name, or None when `classifier_url` is unset."""
        if not settings.classifier_url:
            return None
        return cls(
            settings.classifier_url,
            model=settings.classifier_model,
            threshold=settings.classifier_threshold,
            injection_labels=tuple(settings.injection_labels),
        )

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """The injection probability of each text, from one `/classify` request.

        Texts longer than the model's length are cut to it by the server (the start is kept).
        Raises ClassifierUnavailableError when the server does not answer, ClassifierError when
        it answers with an error.
        """
        if not texts:
            return []
        model = self.served_model()
        body = {"model": model, "input": list(texts), "truncate_prompt_tokens": -1}
        data = self._request("POST", "/classify", json=body).get("data")
        if not isinstance(data, list) or len(data) != len(texts):
            raise ClassifierError(
                f"The classifier at {self.url} answered {len(data or [])} results for "
                f"{len(texts)} texts."
            )
        id2label = self.class_labels(model)
        return [self._injection_probability(item, id2label) for item in data]

    def flags(self, probability: float) -> bool:
        return probability >= self.threshold

    def served_model(self) -> str:
        """The configured model, or the first one the server lists (remembered)."""
        if self.model is None:
            served = [m["id"] for m in self._request("GET", "/v1/models").get("data", [])]
            if not served:
                raise ClassifierError(f"The classifier server at {self.url} serves no model.")
            self.model = str(served[0])
        return self.model

    def class_labels(self, model: str) -> dict[int, str] | None:
        """Every class's label from the model's config.json, when it can be read here."""
        if self.id2label is None and not self._labels_looked_up:
            self._labels_looked_up = True
            self.id2label = _local_id2label(model)
        return self.id2label

    def _injection_probability(
        self, item: dict[str, Any], id2label: dict[int, str] | None
    ) -> float:
        probs = [float(p) for p in item["probs"]]
        if id2label and len(id2label) == len(probs):
            return min(
                1.0, sum(p for i, p in enumerate(probs) if id2label[i].casefold() in self._wanted)
            )
        predicted = max(range(len(probs)), key=probs.__getitem__)
        label = str(item.get("label") or f"LABEL_{predicted}")
        if label.casefold() in self._wanted:
            return probs[predicted]
        return max(0.0, 1.0 - probs[predicted])

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        address = f"{self.url}{path}"
        try:
            response = httpx.request(method, address, timeout=self.timeout, **kwargs)
        except httpx.TimeoutException:
            raise ClassifierUnavailableError(
                f"The injection classifier at {self.url} did not answer in time "
                f"({self.timeout.read:.0f} s). Check the server or unset {URL_SETTING}."
            ) from None
        except httpx.TransportError as exc:
            raise ClassifierUnavailableError(
                f"No injection classifier answers at {self.url} ({type(exc).__name__}). Start "
                f"one (docs/chat.md) or unset {URL_SETTING}."
            ) from None
        if response.status_code != 200:
            raise ClassifierError(
                f"The injection classifier at {self.url} answered {response.status_code} to "
                f"{path}: {response.text[:300]}. Is it a sequence-classification model served "
                f"with --runner pooling? ({URL_SETTING}, QUARRY_SCREENING_CLASSIFIER_MODEL)"
            )
        try:
            return dict(response.json())
        except (ValueError, TypeError):
            raise ClassifierError(
                f"The injection classifier at {self.url} answered {path} with something that "
                f"is not a JSON object ({URL_SETTING})."
            ) from None


def _local_id2label(model: str) -> dict[int, str] | None:
    """The `id2label` of a model folder, or of a model in the Hugging Face cache; no download."""
    config = Path(model) / "config.json"
    if not config.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json")
        except Exception:  # not a repo id, or no cache: the labels come from the responses
            return None
        if not isinstance(cached, str):
            return None
        config = Path(cached)
    try:
        raw = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
        labels = {int(index): str(label) for index, label in raw.items()}
    except (OSError, ValueError, AttributeError):
        return None
    if sorted(labels) != list(range(len(labels))):
        return None
    log.debug("Injection classifier %s: labels %s from %s", model, labels, config)
    return labels
