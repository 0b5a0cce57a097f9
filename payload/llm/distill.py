"""`KLTrainer`: a transformers Trainer whose loss is KL(teacher ‖ student) on target tokens.

Only positions whose next token is a target (label != -100) count. Both
distributions are softened by ``temperature`` and the KL is scaled by T² (so
its gradients keep their size); ``alpha`` mixes it with the plain next-token
cross-entropy: ``alpha * KL + (1 - alpha) * CE``. ``kl`` and ``ce`` are logged
next to ``loss``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional
from transformers import Trainer


class KLTrainer(Trainer):  # type: ignore[misc, unused-ignore]
    """See the module docstring."""

    def __init__(self, *, teacher: Any, temperature: float, alpha: float, **kwargs: Any) -> None:
        """``teacher`` is frozen and moved next to the student."""
        super().__init__(**kwargs)
        self.teacher = teacher.to(self.args.device).eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha
        self._parts: dict[str, list[float]] = {"kl": [], "ce": []}

    def compute_loss(  # type: ignore[override, unused-ignore]
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kw: Any
    ) -> Any:
        """alpha * T² * KL(teacher ‖ student) + (1 - alpha) * CE over target positions."""
        labels = inputs["labels"]
        feed = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**feed)
        with torch.no_grad():
            teacher_logits = self.teacher(**feed).logits
        mask = labels[:, 1:] != -100
        student = outputs.logits[:, :-1][mask]
        teacher = teacher_logits[:, :-1][mask]
        t = self.temperature
        kl = functional.kl_div(
            functional.log_softmax(student / t, dim=-1),
            functional.log_softmax(teacher / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        ) * (t * t)
        ce = functional.cross_entropy(student, labels[:, 1:][mask])
        loss = self.alpha * kl + (1 - self.alpha) * ce
        if model.training:
            self._parts["kl"].append(float(kl.detach()))
            self._parts["ce"].append(float(ce.detach()))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add the mean ``kl`` and ``ce`` since the last log to training logs."""
        if "loss" in logs:
            for name, values in self._parts.items():
                if values:
                    logs[name] = sum(values) / len(values)
                    values.clear()
        super().log(logs, *args, **kwargs)
