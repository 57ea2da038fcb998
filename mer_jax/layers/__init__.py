"""Building blocks shared by the models: BiLSTM, masked pooling, attention, feature normalisation."""
