"""The course's classifiers: rnn.CaptioningRNN and pretrained_cnn.PretrainedCNN."""
