"""recurrent-mlm: BERT-style masked language models with recurrence, as Hugging Face transformers models.

Importing the package registers the configuration and every head with the transformers Auto classes, and
marks each class for `save_pretrained` to write its code and an `auto_map` (so checkpoints load with
`trust_remote_code=True` where this package is not installed). It also gives PEFT default LoRA target modules
for our model type, once PEFT is imported (`recurrent_mlm.integrations`).
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .integrations import register_peft_defaults_when_imported
from .models.configuration_recurrent_mlm import RecurrentMLMConfig, solve_recurrence_hidden_size
from .models.modeling_recurrent_mlm import (
    RecurrentMLMForMaskedLM,
    RecurrentMLMForMultipleChoice,
    RecurrentMLMForQuestionAnswering,
    RecurrentMLMForSequenceClassification,
    RecurrentMLMForTokenClassification,
    RecurrentMLMModel,
    RecurrentMLMPreTrainedModel,
)

__version__ = "0.1.0"

_AUTO_CLASSES = {
    AutoModel: RecurrentMLMModel,
    AutoModelForMaskedLM: RecurrentMLMForMaskedLM,
    AutoModelForSequenceClassification: RecurrentMLMForSequenceClassification,
    AutoModelForTokenClassification: RecurrentMLMForTokenClassification,
    AutoModelForQuestionAnswering: RecurrentMLMForQuestionAnswering,
    AutoModelForMultipleChoice: RecurrentMLMForMultipleChoice,
}

AutoConfig.register(RecurrentMLMConfig.model_type, RecurrentMLMConfig, exist_ok=True)
RecurrentMLMConfig.register_for_auto_class()
for _auto_class, _model_class in _AUTO_CLASSES.items():
    _auto_class.register(RecurrentMLMConfig, _model_class, exist_ok=True)
    _model_class.register_for_auto_class(_auto_class.__name__)

register_peft_defaults_when_imported()

__all__ = [
    "RecurrentMLMConfig",
    "RecurrentMLMPreTrainedModel",
    "RecurrentMLMModel",
    "RecurrentMLMForMaskedLM",
    "RecurrentMLMForSequenceClassification",
    "RecurrentMLMForTokenClassification",
    "RecurrentMLMForQuestionAnswering",
    "RecurrentMLMForMultipleChoice",
    "solve_recurrence_hidden_size",
]
