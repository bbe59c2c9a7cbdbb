"""The CS231n (2016) assignment 3 API over gradscope's own code.

Change `cs231n` to `gradscope.course` in a notebook's imports and its calls keep their
names, signatures, return layouts and conventions:

    rnn_layers, layers, gradient_check, optim    the layer functions and update rules
    classifiers.rnn.CaptioningRNN                 gradscope's captioning model
    classifiers.pretrained_cnn.PretrainedCNN      block-indexed forward/backward on images in
                                                  the course's units (pixels minus the mean image)
    captioning_solver.CaptioningSolver            gradscope's Trainer, printing as the course's did
    coco_utils, data_utils, image_utils           the course's data dicts and image helpers

This package is the one place in gradscope that prints (where the course printed: the
solver's loss lines, eval_numerical_gradient's verbose mode), because notebooks expect it.
Nothing here imports a submodule until it is asked for.
"""
