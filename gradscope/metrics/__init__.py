"""Caption metrics, pure Python, matching the COCO caption evaluation (pycocoevalcap)
on the same tokens: corpus BLEU-1..4, CIDEr-D and ROUGE-L.

references[i] is the list of reference token lists of image i; hypotheses[i] its
generated caption as a token list (see gradscope.data.vocab.tokenize)."""
from gradscope.metrics.bleu import bleu
from gradscope.metrics.cider import cider, cider_per_image
from gradscope.metrics.rouge import rouge_l, rouge_l_per_image

__all__ = ["bleu", "cider", "cider_per_image", "rouge_l", "rouge_l_per_image", "score_all"]


def score_all(references, hypotheses) -> dict:
    """{'Bleu_1'..'Bleu_4', 'CIDEr', 'ROUGE_L'} (the COCO evaluation's names) as floats."""
    scores = {f"Bleu_{k + 1}": float(b) for k, b in enumerate(bleu(references, hypotheses))}
    scores["CIDEr"] = float(cider(references, hypotheses))
    scores["ROUGE_L"] = float(rouge_l(references, hypotheses))
    return scores
