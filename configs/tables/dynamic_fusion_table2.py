"""The dynamic-fusion paper, Table 2 (ablation): from mean-pooled MFCC + static BERT to the full model,
one improvement at a time (IEMOCAP 6 classes, the paper's random 8:2 split, configs/dynamic_fusion_iemocap.py).

"Params (M)" counts every parameter of our model, the text encoder's included (DeBERTa-v3-base
alone has about 184 M, BERT-base about 110 M); the paper's 27.6 M cannot include its encoder.
"""

CONFIG = "dynamic_fusion_iemocap.py"
TITLE = "Dynamic fusion, Table 2: ablation (accuracy = WA, F1 = weighted F1, UA, in %)"
COLUMNS = (("wa", "Accuracy"), ("weighted_f1", "F1"), ("ua", "UA"), ("parameters", "Params (M)"))
STATIC_BERT = {"text.encoder": "bert-base-uncased", "train.freeze_encoder": True}
BASELINE = ("baseline", "Baseline (mean-pooled MFCC + static BERT, concatenated)", None,
            {"model.audio_encoder": "mean", "model.fusion": "concat", **STATIC_BERT}, (64.4, 61.2, None, 18.3))
FULL = ("full", "+ cross-modal attention (the full model)", None, {}, (83.5, 82.1, None, 27.6))
ROWS = (
    BASELINE,
    ("bilstm", "+ BiLSTM temporal modelling", None, {"model.fusion": "concat", **STATIC_BERT}, (71.2, 68.5, None, None)),
    ("deberta", "+ DeBERTa-V3 fine-tuning", None, {"model.fusion": "concat"}, (76.8, 74.1, None, None)),
    FULL,
)
